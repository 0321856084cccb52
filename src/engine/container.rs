//! Containers: create from a spec, start and wait for readiness, inspect, stop,
//! remove, logs, and one-off containers run to completion.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, Mount, MountTypeEnum, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::{
    push_tail, ContainerInfo, ContainerSpec, Engine, EngineError, MountSource, Result, WaitError,
};

impl Engine {
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
                network_mode: spec.network.as_ref().map(|n| n.network.clone()),
                extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
                ..Default::default()
            }),
            networking_config: spec.network.as_ref().map(|n| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    n.network.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(n.ip.clone()),
                            ..Default::default()
                        }),
                        aliases: Some(n.aliases.clone()),
                        ..Default::default()
                    },
                )])),
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

    /// Remove a container and its anonymous volumes (never a named one): a base image
    /// that declares a VOLUME, such as the official `postgres:18` (`/var/lib/postgresql`),
    /// gives every container one, which would otherwise be left behind.
    pub async fn remove_container(&self, name: &str, force: bool) -> Result<()> {
        self.docker
            .remove_container(
                name,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(force)
                        .v(true)
                        .build(),
                ),
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
        let s = self.docker.logs(
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
        super::exec::copy_to_stdio(s).await
    }

    /// The last `tail` lines a container wrote (stdout and stderr), for a caller
    /// that reads what a stopped helper said.
    pub async fn log_lines(&self, name: &str, tail: usize) -> Result<Vec<String>> {
        let mut s = self.docker.logs(
            name,
            Some(
                LogsOptionsBuilder::new()
                    .stdout(true)
                    .stderr(true)
                    .follow(false)
                    .tail(&tail.to_string())
                    .build(),
            ),
        );
        let mut text = String::new();
        while let Some(chunk) = s.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
        }
        Ok(text.lines().map(String::from).collect())
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
