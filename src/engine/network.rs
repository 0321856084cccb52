//! Private bridge networks for a cluster: created with a fixed subnet (so its
//! members get static addresses, which work on Docker and on Podman's CNI backend
//! alike without DNS), inspected for that subnet, and removed.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;

use super::{Engine, EngineError, Result};

/// A network as pgbox sees it.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// The first IPAM subnet (`10.213.7.0/24`), if any.
    pub subnet: Option<String>,
    pub labels: HashMap<String, String>,
}

impl Engine {
    /// The network `name`, or None when it does not exist.
    pub async fn inspect_network(&self, name: &str) -> Result<Option<NetworkInfo>> {
        match self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(n) => Ok(Some(NetworkInfo {
                subnet: n
                    .ipam
                    .and_then(|i| i.config)
                    .and_then(|c| c.into_iter().find_map(|c| c.subnet)),
                labels: n.labels.unwrap_or_default(),
            })),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Create a bridge network with `subnet` (gateway `.1`).
    pub async fn create_network(
        &self,
        name: &str,
        subnet: &str,
        gateway: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker.create_network(req).await?;
        Ok(())
    }

    /// Remove a network; a missing one is not an error.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}
