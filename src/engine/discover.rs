//! Finding a container engine: `--engine`, `DOCKER_HOST`, then the usual sockets.
//!
//! Each candidate is tried with a short timeout and the API version is negotiated
//! down to what the engine speaks (Docker 20.10 stops at API 1.41). When nothing
//! answers, the error lists every address tried and how to start an engine, so a
//! user never sees a bare "connection refused". A socket this user may not open
//! (not in the `docker` group, a root-only Podman socket) is named as a permission
//! problem, with the group to join or the rootless engine to use instead.

use std::path::PathBuf;
use std::time::Duration;

use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};

use super::ping::{self, Identity};

use crate::error::{Fail, EXIT_NO_ENGINE, EXIT_USAGE};

/// An address to try, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub address: String,
    pub origin: &'static str,
}

const DOCKER_SOCK: &str = "unix:///var/run/docker.sock";
const PODMAN_ROOTFUL_SOCK: &str = "unix:///run/podman/podman.sock";

fn rootless(path: &str) -> Option<String> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            Some(PathBuf::from(format!("/run/user/{}", unsafe {
                libc::geteuid()
            })))
        })?;
    Some(format!("unix://{}", dir.join(path).display()))
}

/// The addresses to try, in order, for an `--engine` choice (or none).
pub fn candidates(choice: Option<&str>, docker_host: Option<&str>) -> Result<Vec<Candidate>, Fail> {
    let c = |address: String, origin| Candidate { address, origin };
    let docker = || {
        let mut v = vec![c(DOCKER_SOCK.into(), "Docker socket")];
        v.extend(rootless("docker.sock").map(|a| c(a, "rootless Docker socket")));
        v
    };
    let podman = || {
        let mut v = vec![c(PODMAN_ROOTFUL_SOCK.into(), "rootful Podman socket")];
        v.extend(rootless("podman/podman.sock").map(|a| c(a, "rootless Podman socket")));
        v
    };
    Ok(match choice {
        Some("docker") => docker(),
        Some("podman") => podman(),
        Some(addr) if addr.contains("://") || addr.starts_with('/') => {
            let address = if addr.starts_with('/') { format!("unix://{addr}") } else { addr.to_string() };
            vec![c(address, "--engine")]
        }
        Some(other) => {
            return Err(Fail::new(format!("`{other}` is not an engine"))
                .hint("pass `--engine docker`, `--engine podman`, or an address like `unix:///run/podman/podman.sock`")
                .code(EXIT_USAGE))
        }
        None => match docker_host {
            Some(h) if !h.is_empty() => vec![c(h.to_string(), "DOCKER_HOST")],
            _ => {
                let mut v = docker();
                v.extend(podman());
                v
            }
        },
    })
}

/// Why a candidate did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSocket,
    /// The socket exists but this user may not open it (EACCES).
    PermissionDenied {
        owner: String,
        group: String,
        mode: u32,
    },
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoSocket => write!(f, "no socket there"),
            Refusal::PermissionDenied { owner, group, mode } => write!(
                f,
                "permission denied: the socket is `{owner}:{group}` mode {mode:o} and user `{}` may not open it",
                user_name()
            ),
            Refusal::Other(why) => write!(f, "{why}"),
        }
    }
}

/// A name from `/etc/passwd` or `/etc/group` for an id, or the id itself.
fn name_of(file: &str, id: u32) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == id.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| id.to_string())
}

fn user_name() -> String {
    // SAFETY: geteuid has no preconditions.
    name_of("/etc/passwd", unsafe { libc::geteuid() })
}

/// Open the socket once ourselves, so a permission problem is told by its errno
/// and not lost inside the HTTP client's "client error (Connect)".
fn check_socket(path: &str) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::NoSocket),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Refusal::Other(format!(
                "cannot reach the socket's folder: {e}"
            )))
        }
        Err(e) => return Err(Refusal::Other(e.to_string())),
    };
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Refusal::PermissionDenied {
                owner: name_of("/etc/passwd", meta.uid()),
                group: name_of("/etc/group", meta.gid()),
                mode: meta.mode() & 0o777,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Refusal::Other(
            "nothing listens there (connection refused: the engine is stopped and left its socket file)"
                .into(),
        )),
        Err(e) => Err(Refusal::Other(e.to_string())),
    }
}

/// Connect to one address and negotiate the API version; `Err` says why not. The
/// engine's identity comes from one `GET /_ping` (see `ping`); None when its
/// headers lack it, and then the version was negotiated through `/version`.
pub async fn try_connect(address: &str) -> Result<(Docker, Option<Identity>), Refusal> {
    let probe_timeout = 5;
    let other = |e: bollard::errors::Error| Refusal::Other(e.to_string());
    let unix = address.strip_prefix("unix://");
    if let Some(path) = unix {
        check_socket(path)?;
    } else if !(address.starts_with("tcp://") || address.starts_with("http://")) {
        return Err(Refusal::Other(
            "unsupported address scheme (use unix://, tcp:// or http://)".into(),
        ));
    }
    let identity = ping::identify(address, Duration::from_secs(probe_timeout))
        .await
        .map_err(Refusal::Other)?;
    // The engine's API version when it is older than bollard's, as `negotiate_version` does.
    let version = match &identity {
        Some(Identity {
            api: (major, minor),
            ..
        }) if (*major, *minor)
            < (
                API_DEFAULT_VERSION.major_version,
                API_DEFAULT_VERSION.minor_version,
            ) =>
        {
            ClientVersion {
                major_version: *major,
                minor_version: *minor,
            }
        }
        _ => *API_DEFAULT_VERSION,
    };
    let docker = match unix {
        Some(path) => Docker::connect_with_unix(path, probe_timeout, &version).map_err(other)?,
        None => Docker::connect_with_http(address, probe_timeout, &version).map_err(other)?,
    };
    let docker = match identity {
        Some(_) => docker,
        None => docker.negotiate_version().await.map_err(other)?,
    };
    Ok((docker.with_timeout(Duration::from_secs(600)), identity))
}

/// The hint for sockets this user may not open: the group to join, or another engine.
fn permission_hint(denied: &[(&Candidate, &Refusal)]) -> String {
    let groups: Vec<&str> = denied
        .iter()
        .filter_map(|(_, r)| match r {
            Refusal::PermissionDenied { group, mode, .. }
                if mode & 0o060 == 0o060 && group != "root" =>
            {
                Some(group.as_str())
            }
            _ => None,
        })
        .collect();
    let join = match groups.first() {
        Some(g) => format!(
            "add your user to the `{g}` group: `sudo usermod -aG {g} $USER`, then log out and in again (or run `newgrp {g}`); "
        ),
        None => "only root may use that socket: run pgbox with sudo; ".into(),
    };
    format!(
        "{join}or use a rootless engine (rootless Podman: `systemctl --user start podman.socket`, or rootless Docker) and choose it with `--engine podman` or `--engine unix:///run/user/$UID/...`"
    )
}

/// Try candidates in order; the first that answers wins.
pub async fn connect(choice: Option<&str>) -> Result<(Docker, Candidate, Option<Identity>), Fail> {
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let list = candidates(choice, docker_host.as_deref())?;
    let mut failed = Vec::new();
    for cand in list {
        match try_connect(&cand.address).await {
            Ok((d, identity)) => return Ok((d, cand, identity)),
            Err(why) => failed.push((cand, why)),
        }
    }
    let tried: Vec<String> = failed
        .iter()
        .map(|(c, why)| format!("  {} ({}): {why}", c.address, c.origin))
        .collect();
    let denied: Vec<(&Candidate, &Refusal)> = failed
        .iter()
        .filter(|(_, r)| matches!(r, Refusal::PermissionDenied { .. }))
        .map(|(c, r)| (c, r))
        .collect();
    if let Some((first, _)) = denied.first() {
        return Err(Fail::new(format!(
            "permission denied on the container engine's socket `{}`; tried:\n{}",
            first.address,
            tried.join("\n")
        ))
        .hint(permission_hint(&denied))
        .code(EXIT_NO_ENGINE));
    }
    let stale = docker_host.filter(|h| !h.is_empty() && choice.is_none());
    let hint = if let Some(h) = stale {
        format!("DOCKER_HOST is set to `{h}` and nothing answers there: start that engine, or `unset DOCKER_HOST` to use the local sockets")
    } else {
        "start an engine: `sudo systemctl start docker` (or `sudo dockerd &`), or Podman's API with \
         `systemctl --user start podman.socket`; in pgbox's source tree `scripts/ensure-engine.sh` does it for tests"
            .to_string()
    };
    Err(Fail::new(format!(
        "no container engine answered; tried:\n{}",
        tried.join("\n")
    ))
    .hint(hint)
    .code(EXIT_NO_ENGINE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_alone_when_set() {
        let c = candidates(None, Some("tcp://10.0.0.1:2375")).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].origin, "DOCKER_HOST");
    }

    #[test]
    fn default_order_prefers_docker_then_podman() {
        let c = candidates(None, None).unwrap();
        assert_eq!(c[0].address, DOCKER_SOCK);
        assert!(c.iter().any(|x| x.address == PODMAN_ROOTFUL_SOCK));
        let first_podman = c.iter().position(|x| x.origin.contains("Podman")).unwrap();
        assert!(c[..first_podman]
            .iter()
            .all(|x| x.origin.contains("Docker")));
    }

    #[test]
    fn explicit_choices() {
        assert!(candidates(Some("podman"), Some("x"))
            .unwrap()
            .iter()
            .all(|c| c.origin.contains("Podman")));
        assert_eq!(
            candidates(Some("/tmp/s.sock"), None).unwrap()[0].address,
            "unix:///tmp/s.sock"
        );
        assert!(candidates(Some("lxc"), None).is_err());
    }

    #[test]
    fn permission_hints_name_the_group_or_root() {
        let c = Candidate {
            address: DOCKER_SOCK.into(),
            origin: "Docker socket",
        };
        let docker = Refusal::PermissionDenied {
            owner: "root".into(),
            group: "docker".into(),
            mode: 0o660,
        };
        let h = permission_hint(&[(&c, &docker)]);
        assert!(
            h.contains("sudo usermod -aG docker $USER") && h.contains("rootless"),
            "{h}"
        );
        let root_only = Refusal::PermissionDenied {
            owner: "root".into(),
            group: "root".into(),
            mode: 0o600,
        };
        assert!(permission_hint(&[(&c, &root_only)]).contains("only root"));
    }
}
