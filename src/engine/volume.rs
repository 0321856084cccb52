//! Named volumes: exist, create, remove.

use std::collections::HashMap;

use bollard::models::VolumeCreateOptions;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

use super::{Engine, EngineError, Result};

impl Engine {
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
}
