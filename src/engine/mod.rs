//! The only code that talks to the container engine (through bollard).
//!
//! Commands see a narrow pgbox-level interface: [`Engine`] with plain Rust types
//! ([`ContainerSpec`], [`ContainerInfo`], [`ExecSpec`]) and never a bollard type.
//! That keeps Docker/Podman differences and API-version quirks in one place.

mod discover;
mod exec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig, Mount, MountTypeEnum,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateOptions,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, BuildImageOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use thiserror::Error;

pub use exec::{ExecOutput, ExecSpec};

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

/// A connected engine.
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
        let (docker, cand) = discover::connect(choice).await?;
        let (flavour, version) = match docker.version().await {
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
            Err(_) => (Flavour::Docker, String::new()),
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

    // ---- images ----

    pub async fn image_exists(&self, tag: &str) -> Result<bool> {
        match self.docker.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Build an image from an uncompressed tar context. `on_line` sees every output line.
    pub async fn build_image(
        &self,
        tag: &str,
        context_tar: Vec<u8>,
        labels: &HashMap<String, String>,
        mut on_line: impl FnMut(&str),
    ) -> Result<()> {
        let opts = BuildImageOptionsBuilder::new()
            .dockerfile("Containerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(labels)
            .build();
        let mut stream =
            self.docker
                .build_image(opts, None, Some(bollard::body_full(context_tar.into())));
        let mut tail: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item?;
            if let Some(s) = info.stream.as_deref() {
                for line in s.lines().filter(|l| !l.trim().is_empty()) {
                    on_line(line);
                    push_tail(&mut tail, line, 15);
                }
            }
            if let Some(err) = info.error.or(info.error_detail.and_then(|d| d.message)) {
                return Err(EngineError::Other(format!("{err}\n{}", tail.join("\n"))));
            }
        }
        if !self.image_exists(tag).await? {
            return Err(EngineError::Other(format!(
                "the build ended without producing `{tag}`\n{}",
                tail.join("\n")
            )));
        }
        Ok(())
    }

    /// Read a user's UID and GID from an image's /etc/passwd without starting it.
    pub async fn image_user_ids(&self, image: &str, user: &str) -> Result<(u32, u32)> {
        let name = format!("pgbox-probe-{}", std::process::id());
        let _ = self.remove_container(&name, true).await;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["true".into()]),
            labels: Some(HashMap::from([(
                LABEL_PROJECT.to_string(),
                "-probe".to_string(),
            )])),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await?;
        let mut stream = self.docker.download_from_container(
            &name,
            Some(
                DownloadFromContainerOptionsBuilder::new()
                    .path("/etc/passwd")
                    .build(),
            ),
        );
        let mut bytes = Vec::new();
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(e) => {
                    failure = Some(EngineError::from(e));
                    break;
                }
            }
        }
        let _ = self.remove_container(&name, true).await;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut passwd = String::new();
        for entry in archive
            .entries()
            .map_err(|e| EngineError::Other(e.to_string()))?
        {
            let mut entry = entry.map_err(|e| EngineError::Other(e.to_string()))?;
            std::io::Read::read_to_string(&mut entry, &mut passwd)
                .map_err(|e| EngineError::Other(e.to_string()))?;
        }
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[0] == user)
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .ok_or_else(|| {
                EngineError::Other(format!(
                    "image `{image}` has no user `{user}` in /etc/passwd"
                ))
            })
    }

    // ---- containers ----

    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        let c = match self
            .docker
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                return match EngineError::from(e) {
                    EngineError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        Ok(Some(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            exit_code: state.exit_code,
            started_at: state.started_at,
            labels: config.labels.unwrap_or_default(),
        }))
    }

    /// A small file from a container, running or stopped; None when it does not exist.
    pub async fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let mut stream = self.docker.download_from_container(
            name,
            Some(
                DownloadFromContainerOptionsBuilder::new()
                    .path(path)
                    .build(),
            ),
        );
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(EngineError::from) {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(EngineError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        let other = |e: std::io::Error| EngineError::Other(e.to_string());
        let mut entries = archive.entries().map_err(other)?;
        let Some(entry) = entries.next() else {
            return Ok(None);
        };
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry.map_err(other)?, &mut content).map_err(other)?;
        Ok(Some(content))
    }

    /// Every container carrying `label` (any value), running or not.
    pub async fn list_labelled(&self, label: &str) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let status = c.status.unwrap_or_default();
                let health = ["healthy", "unhealthy", "starting"]
                    .into_iter()
                    .find(|h| {
                        status.contains(&format!("({h})"))
                            || status.contains(&format!("(health: {h})"))
                    })
                    .map(String::from);
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    image: c.image.unwrap_or_default(),
                    running: state == "running",
                    state,
                    health,
                    exit_code: None,
                    started_at: None,
                    labels: c.labels.unwrap_or_default(),
                }
            })
            .collect())
    }

    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let mounts = spec
            .mounts
            .iter()
            .map(|m| {
                let (typ, source) = match &m.source {
                    MountSource::Bind(p) => (MountTypeEnum::BIND, p.display().to_string()),
                    MountSource::Volume(v) => (MountTypeEnum::VOLUME, v.clone()),
                };
                Mount {
                    target: Some(m.target.clone()),
                    source: Some(source),
                    typ: Some(typ),
                    read_only: Some(m.read_only),
                    ..Default::default()
                }
            })
            .collect();
        let mut exposed = None;
        let mut bindings = None;
        if let Some((host_ip, host_port, cport)) = &spec.port {
            let key = format!("{cport}/tcp");
            exposed = Some(HashMap::from([(key.clone(), HashMap::new())]));
            bindings = Some(HashMap::from([(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(host_ip.clone()),
                    host_port: Some(host_port.to_string()),
                }]),
            )]));
        }
        let secs = |d: Duration| d.as_nanos() as i64;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.name.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            entrypoint: spec.entrypoint.clone(),
            user: spec.user.clone(),
            exposed_ports: exposed,
            stop_timeout: Some(spec.stop_timeout.as_secs() as i64),
            healthcheck: (!spec.healthcheck.is_empty()).then(|| HealthConfig {
                test: Some(spec.healthcheck.clone()),
                interval: Some(secs(Duration::from_secs(10))),
                timeout: Some(secs(Duration::from_secs(3))),
                retries: Some(3),
                start_period: Some(secs(Duration::from_secs(60))),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                port_bindings: bindings,
                memory: spec.memory.map(|m| m as i64),
                restart_policy: spec.service.then_some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                log_config: spec.service.then(|| HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), "10m".to_string()),
                        ("max-file".to_string(), "3".to_string()),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = self
            .docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(&spec.name)
                        .build(),
                ),
                body,
            )
            .await?;
        Ok(resp.id)
    }

    /// Start a container and wait for `marker` in its output (from this start only).
    ///
    /// Attaching before starting means old log lines can never be mistaken for a
    /// fresh start. If the stream ends, the container died; the last lines come back.
    pub async fn start_and_wait(
        &self,
        name: &str,
        marker: &str,
        timeout: Duration,
        mut on_line: impl FnMut(&str),
    ) -> Result<Duration, WaitError> {
        let attach = self
            .docker
            .attach_container(
                name,
                Some(
                    AttachContainerOptionsBuilder::new()
                        .stream(true)
                        .stdout(true)
                        .stderr(true)
                        .logs(false)
                        .build(),
                ),
            )
            .await
            .map_err(EngineError::from)?;
        let started = Instant::now();
        self.docker
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(EngineError::from)?;
        let mut output = attach.output;
        let mut tail = Vec::new();
        let mut partial = String::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, output.next()).await;
            match next {
                Err(_) => return Err(WaitError::Timeout(timeout, tail)),
                Ok(Some(Ok(chunk))) => {
                    partial.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                    while let Some(pos) = partial.find('\n') {
                        let line: String = partial.drain(..=pos).collect();
                        let line = line.trim_end();
                        on_line(line);
                        push_tail(&mut tail, line, 30);
                        if line.contains(marker) {
                            return Ok(started.elapsed());
                        }
                    }
                }
                Ok(Some(Err(e))) => return Err(WaitError::Engine(e.into())),
                Ok(None) => {
                    if !partial.is_empty() {
                        push_tail(&mut tail, partial.trim_end(), 30);
                    }
                    let exit_code = self.wait_exit(name).await.unwrap_or(-1);
                    return Err(WaitError::Died {
                        exit_code,
                        last_lines: tail,
                    });
                }
            }
        }
    }

    async fn wait_exit(&self, name: &str) -> Result<i64> {
        let mut s = self.docker.wait_container(
            name,
            Some(
                WaitContainerOptionsBuilder::new()
                    .condition("not-running")
                    .build(),
            ),
        );
        match s.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e.into()),
            None => Ok(-1),
        }
    }

    pub async fn stop_container(&self, name: &str, timeout: Duration) -> Result<()> {
        self.docker
            .stop_container(
                name,
                Some(
                    StopContainerOptionsBuilder::new()
                        .t(timeout.as_secs() as i32)
                        .build(),
                ),
            )
            .await?;
        Ok(())
    }

    pub async fn remove_container(&self, name: &str, force: bool) -> Result<()> {
        self.docker
            .remove_container(
                name,
                Some(RemoveContainerOptionsBuilder::new().force(force).build()),
            )
            .await?;
        Ok(())
    }

    /// Stream logs to stdout/stderr as the engine sends them.
    pub async fn stream_logs(
        &self,
        name: &str,
        follow: bool,
        tail: &str,
        timestamps: bool,
    ) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut stdout = tokio::io::stdout();
        let mut stderr = tokio::io::stderr();
        let mut s = self.docker.logs(
            name,
            Some(
                LogsOptionsBuilder::new()
                    .stdout(true)
                    .stderr(true)
                    .follow(follow)
                    .timestamps(timestamps)
                    .tail(tail)
                    .build(),
            ),
        );
        while let Some(chunk) = s.next().await {
            let w: Result<(), std::io::Error> = match chunk? {
                bollard::container::LogOutput::StdErr { message } => {
                    stderr.write_all(&message).await.and(stderr.flush().await)
                }
                other => stdout
                    .write_all(&other.into_bytes())
                    .await
                    .and(stdout.flush().await),
            };
            if w.is_err() {
                break; // the reader went away (e.g. `| head`)
            }
        }
        Ok(())
    }

    // ---- volumes ----

    pub async fn volume_exists(&self, name: &str) -> Result<bool> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        self.docker
            .create_volume(VolumeCreateOptions {
                name: Some(name.to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.docker
            .remove_volume(
                name,
                Some(RemoveVolumeOptionsBuilder::new().force(false).build()),
            )
            .await?;
        Ok(())
    }

    /// Create a container from `spec`, run it to completion, remove it.
    /// Returns its exit code and output lines.
    pub async fn run_to_completion(&self, spec: &ContainerSpec) -> Result<(i64, Vec<String>)> {
        let _ = self.remove_container(&spec.name, true).await;
        self.create_container(spec).await?;
        let result = async {
            let attach = self
                .docker
                .attach_container(
                    &spec.name,
                    Some(
                        AttachContainerOptionsBuilder::new()
                            .stream(true)
                            .stdout(true)
                            .stderr(true)
                            .logs(true)
                            .build(),
                    ),
                )
                .await?;
            self.docker
                .start_container(
                    &spec.name,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await?;
            let mut output = attach.output;
            let mut text = String::new();
            while let Some(chunk) = output.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
            }
            let code = self.wait_exit(&spec.name).await?;
            Ok((code, text.lines().map(String::from).collect()))
        }
        .await;
        let _ = self.remove_container(&spec.name, true).await;
        result
    }
}

fn push_tail(tail: &mut Vec<String>, line: &str, keep: usize) {
    if tail.len() == keep {
        tail.remove(0);
    }
    tail.push(line.to_string());
}
