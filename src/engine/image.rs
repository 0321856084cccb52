//! Images: existence, builds from a tar context, and the user IDs an image runs as.

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateContainerOptionsBuilder};
use futures_util::StreamExt;

use super::{push_tail, Engine, EngineError, Result, LABEL_PROJECT};

impl Engine {
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
        let read = self.read_file(&name, "/etc/passwd").await;
        let _ = self.remove_container(&name, true).await;
        let passwd = String::from_utf8_lossy(&read?.unwrap_or_default()).into_owned();
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
}
