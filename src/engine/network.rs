//! Networks: the per-project bridge network the pooler reaches the server on by
//! name. Created on demand, joined idempotently, removed with the project's `down`.

use std::collections::HashMap;

use bollard::models::{NetworkConnectRequest, NetworkCreateRequest};

use super::{Engine, EngineError, Result};

impl Engine {
    /// Create the network unless it exists.
    pub async fn ensure_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        if self.network_members(name).await?.is_some() {
            return Ok(());
        }
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// The names of the containers on the network; None when it does not exist.
    pub async fn network_members(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self
            .docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(n) => Ok(Some(
                n.containers
                    .unwrap_or_default()
                    .into_values()
                    .filter_map(|c| c.name)
                    .map(|n| n.trim_start_matches('/').to_string())
                    .collect(),
            )),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
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

    /// Remove the network; one that does not exist is fine.
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
