//! Finding a container engine: `--engine`, `DOCKER_HOST`, then the usual sockets.
//!
//! Each candidate is tried with a short timeout and the API version is negotiated
//! down to what the engine speaks (Docker 20.10 stops at API 1.41). When nothing
//! answers, the error lists every address tried and how to start an engine, so a
//! user never sees a bare "connection refused".

use std::path::PathBuf;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

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

/// Connect to one address and negotiate the API version; `Err` says why not.
pub async fn try_connect(address: &str) -> Result<Docker, String> {
    let probe_timeout = 5;
    let docker = if let Some(path) = address.strip_prefix("unix://") {
        if !std::path::Path::new(path).exists() {
            return Err("no socket there".into());
        }
        Docker::connect_with_unix(path, probe_timeout, API_DEFAULT_VERSION)
            .map_err(|e| e.to_string())?
    } else if address.starts_with("tcp://") || address.starts_with("http://") {
        Docker::connect_with_http(address, probe_timeout, API_DEFAULT_VERSION)
            .map_err(|e| e.to_string())?
    } else {
        return Err("unsupported address scheme (use unix://, tcp:// or http://)".into());
    };
    let docker = docker.negotiate_version().await.map_err(|e| {
        let text = e.to_string();
        if text.contains("Permission denied") || text.contains("permission denied") {
            "permission denied (add your user to the `docker` group, or use a rootless engine)"
                .to_string()
        } else {
            text
        }
    })?;
    Ok(docker.with_timeout(Duration::from_secs(600)))
}

/// Try candidates in order; the first that answers wins.
pub async fn connect(choice: Option<&str>) -> Result<(Docker, Candidate), Fail> {
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let list = candidates(choice, docker_host.as_deref())?;
    let mut tried = Vec::new();
    for cand in list {
        match try_connect(&cand.address).await {
            Ok(d) => return Ok((d, cand)),
            Err(why) => tried.push(format!("  {} ({}): {why}", cand.address, cand.origin)),
        }
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
}
