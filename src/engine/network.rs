//! Private bridge networks: the project network the pooler reaches the server on by
//! name, and a cluster's network with a fixed subnet (so its members get static
//! addresses, which work on Docker and on Podman's CNI backend alike without DNS).
//! Created on demand, joined idempotently, inspected, and removed.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;

use super::{Engine, EngineError, Result};

/// A network as pgbox sees it.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// The first IPAM subnet (`10.213.7.0/24`), if any.
    pub subnet: Option<String>,
    pub labels: HashMap<String, String>,
    /// The names of the containers on it.
    pub members: Vec<String>,
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
                members: n
                    .containers
                    .unwrap_or_default()
                    .into_values()
                    .filter_map(|c| c.name)
                    .map(|n| n.trim_start_matches('/').to_string())
                    .collect(),
            })),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The names of the containers on the network; None when it does not exist.
    pub async fn network_members(&self, name: &str) -> Result<Option<Vec<String>>> {
        Ok(self.inspect_network(name).await?.map(|n| n.members))
    }

    /// Create a bridge network: with `subnet` and its gateway when given, else with
    /// an address range the engine picks.
    pub async fn create_network(
        &self,
        name: &str,
        subnet: Option<(&str, &str)>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let ipam = subnet.map(|(subnet, gateway)| Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                gateway: Some(gateway.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            ipam,
            labels: Some(labels),
            ..Default::default()
        };
        self.docker.create_network(req).await?;
        Ok(())
    }

    /// Create the network (engine-picked addresses) unless it exists.
    pub async fn ensure_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        if self.inspect_network(name).await?.is_some() {
            return Ok(());
        }
        self.create_network(name, None, labels).await
    }

    /// Put a container (running or created) on the network unless it is there already.
    pub async fn join_network(&self, network: &str, container: &str) -> Result<()> {
        let members = self.network_members(network).await?.unwrap_or_default();
        if members.iter().any(|m| m == container) {
            return Ok(());
        }
        self.docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: Some(container.to_string()),
                    endpoint_config: None,
                },
            )
            .await?;
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
