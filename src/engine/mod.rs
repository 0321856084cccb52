//! The only code that talks to the container engine (through bollard).
//!
//! Commands see a narrow pgbox-level interface: [`Engine`] with plain Rust types
//! ([`ContainerSpec`], [`ContainerInfo`], [`ExecSpec`]) and never a bollard type.
//! That keeps Docker/Podman differences and API-version quirks in one place.

mod container;
mod discover;
mod exec;
mod image;
mod network;
mod ping;
mod stats;
mod volume;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::Docker;
use thiserror::Error;

pub use exec::{ExecOutput, ExecSpec};
pub use stats::{cpu_percent, Sample as ContainerSample};

/// Label keys pgbox puts on what it creates.
pub const LABEL_PROJECT: &str = "org.pgbox.project";
pub const LABEL_CONFIG: &str = "org.pgbox.config";
pub const LABEL_VERSION: &str = "org.pgbox.version";
pub const LABEL_SPEC: &str = "org.pgbox.spec";
pub const LABEL_PORT: &str = "org.pgbox.port";

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    /// The host port a container publishes is taken (the engine says so only in text,
    /// so this is the one place that reads it).
    #[error("{0}")]
    PortTaken(String),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Other(String),
}

impl From<BollardError> for EngineError {
    fn from(e: BollardError) -> Self {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound(message),
            BollardError::DockerResponseServerError { message, .. }
                if message.contains("port is already allocated")
                    || message.contains("address already in use") =>
            {
                EngineError::PortTaken(message)
            }
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Api {
                status: status_code,
                message,
            },
            other => EngineError::Other(other.to_string()),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Docker or Podman (through its Docker-compatible API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    Docker,
    Podman,
}

/// A connected engine (cheap to clone: guards own one for their async undo).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    pub address: String,
    pub flavour: Flavour,
    pub version: String,
}

#[derive(Debug, Clone)]
pub enum MountSource {
    Bind(PathBuf),
    Volume(String),
}

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

/// What pgbox asks the engine to create.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub mounts: Vec<MountSpec>,
    /// (host address, host port, container port)
    pub port: Option<(String, u16, u16)>,
    pub healthcheck: Vec<String>,
    pub stop_timeout: Duration,
    /// Replaces the image's entrypoint (one-off containers).
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    /// A long-running service: restart policy and log rotation. One-off runs have neither.
    pub service: bool,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// A private network with a static address (cluster members), else the default one.
    pub network: Option<NetAttach>,
    /// `host:ip` lines added to the container's /etc/hosts.
    pub extra_hosts: Vec<String>,
}

/// How a container joins a private network: its name there and a fixed address.
#[derive(Debug, Clone, PartialEq)]
pub struct NetAttach {
    pub network: String,
    pub ip: String,
    pub aliases: Vec<String>,
}

impl ContainerSpec {
    /// A one-off container: no port, no health check, no restart policy.
    pub fn oneshot(name: String, image: String) -> ContainerSpec {
        ContainerSpec {
            name,
            image,
            env: Vec::new(),
            labels: HashMap::from([(LABEL_PROJECT.to_string(), "-oneshot".to_string())]),
            mounts: Vec::new(),
            port: None,
            healthcheck: Vec::new(),
            stop_timeout: Duration::from_secs(10),
            entrypoint: None,
            user: None,
            service: false,
            memory: None,
            network: None,
            extra_hosts: Vec::new(),
        }
    }
}

/// What pgbox needs to know about a container.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub running: bool,
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    pub started_at: Option<String>,
    pub labels: HashMap<String, String>,
}

/// Why waiting for readiness ended without success.
#[derive(Debug, Error)]
pub enum WaitError {
    #[error("the container stopped (exit code {exit_code})")]
    Died {
        exit_code: i64,
        last_lines: Vec<String>,
    },
    #[error("PostgreSQL was not ready after {0:?}")]
    Timeout(Duration, Vec<String>),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Discover and connect (see `discover` for the order).
    pub async fn connect(choice: Option<&str>) -> Result<Engine, crate::error::Fail> {
        let (docker, cand, identity) = discover::connect(choice).await?;
        if let Some(id) = identity {
            return Ok(Engine {
                docker,
                address: cand.address,
                flavour: id.flavour,
                version: id.version,
            });
        }
        let (flavour, version) =
            match docker.version().await {
                Ok(v) => {
                    let podman = v.components.as_ref().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.name.to_ascii_lowercase().contains("podman"))
                    });
                    (
                        if podman {
                            Flavour::Podman
                        } else {
                            Flavour::Docker
                        },
                        v.version.unwrap_or_default(),
                    )
                }
                Err(e) => return Err(crate::error::Fail::new(format!(
                    "the engine at `{}` answered but would not give its version: {e}",
                    cand.address
                ))
                .hint(
                    "check the engine's log; `docker version` (or `podman version`) shows the same",
                )
                .code(crate::error::EXIT_NO_ENGINE)),
            };
        Ok(Engine {
            docker,
            address: cand.address,
            flavour,
            version,
        })
    }

    /// Podman runs health checks with systemd timers; without systemd it never runs
    /// them and the engine's health stays `starting`.
    pub fn health_checks_run(&self) -> bool {
        self.flavour != Flavour::Podman || std::path::Path::new("/run/systemd/system").is_dir()
    }

    /// A rootless engine: its socket lives in the user's runtime folder.
    pub fn rootless(&self) -> bool {
        self.address.contains("/run/user/")
            || std::env::var("XDG_RUNTIME_DIR")
                .is_ok_and(|d| !d.is_empty() && self.address.contains(&d))
    }

    pub fn describe(&self) -> String {
        let name = match self.flavour {
            Flavour::Docker => "Docker",
            Flavour::Podman => "Podman",
        };
        format!("{name} {} at {}", self.version, self.address)
    }
}

fn push_tail(tail: &mut Vec<String>, line: &str, keep: usize) {
    if tail.len() == keep {
        tail.remove(0);
    }
    tail.push(line.to_string());
}
