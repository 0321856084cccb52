//! Every file pgbox writes or builds from, embedded at compile time and rendered here.
//!
//! Files ending in `.j2` are minijinja templates; everything else (the shell
//! scripts that run inside the container) is copied byte for byte, so shell
//! syntax never collides with template syntax. A project can override any
//! template by placing a file of the same name under `.pgbox/templates/`.

use std::path::Path;

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// Where the image expects the data folder or volume: PGDATA, except in fallback
/// mode, on every major and base (the official `postgres:18` image moved its own
/// PGDATA; pgbox sets it here).
pub const DATA_MOUNT: &str = "/var/lib/postgresql/data";

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// (name, body) of every embedded template.
const EMBEDDED: &[(&str, &str)] = embedded![
    "image/Containerfile.j2",
    "image/entrypoint.sh",
    "image/utils/logging.sh",
    "image/utils/validation.sh",
    "image/utils/security.sh",
    "image/init/01-directories.sh",
    "image/init/02-database.sh",
    "image/init/03-config.sh",
    "image/init/04-backup.sh",
    "image/runtime/common.sh",
    "image/runtime/persist.sh",
    "image/runtime/startup.sh",
    "image/runtime/shutdown.sh",
    "image/runtime/healthcheck.sh",
    "image/runtime/ctl.sh",
    "image/runtime/archive.sh",
    "image/runtime/patroni.sh",
    "image/runtime/patroni-bootstrap.sh",
    "cluster/patroni.yml.j2",
    "cluster/compose.yaml.j2",
    "cluster/kube.yaml.j2",
    "cluster/quadlet.kube.j2",
    "postgres/postgresql.conf.j2",
    "deploy/compose.yaml.j2",
    "deploy/podman-run.sh.j2",
    "deploy/kube.yaml.j2",
    "deploy/quadlet.container.j2",
    "deploy/quadlet.volume.j2",
    "deploy/quadlet.pooler.container.j2",
    "deploy/quadlet.network.j2",
    "deploy/k8s-restore.sh",
    "deploy/k8s-README.md.j2",
    "postgres/pg_hba.conf.j2",
    "pgbox.toml.j2",
    "pooler/Containerfile.j2",
    "pooler/entrypoint.sh",
    "pooler/pgbouncer.ini.j2",
];

/// The text of a template: the project's override when present, else the embedded one.
pub fn source(project_dir: Option<&Path>, name: &str) -> anyhow::Result<String> {
    if let Some(dir) = project_dir {
        let path = dir.join(".pgbox/templates").join(name);
        if path.is_file() {
            return std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read template override `{}`", path.display()));
        }
    }
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| body.to_string())
        .with_context(|| format!("no template named `{name}`"))
}

/// Render a template with a serialisable context; non-`.j2` files come back unchanged.
pub fn render(
    project_dir: Option<&Path>,
    name: &str,
    ctx: impl Serialize,
) -> anyhow::Result<String> {
    let body = source(project_dir, name)?;
    if !name.ends_with(".j2") {
        return Ok(body);
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.render_str(&body, ctx)
        .with_context(|| format!("cannot render template `{name}`"))
}

/// One file of an image build context.
pub struct ContextFile {
    pub path: String,
    pub body: Vec<u8>,
    pub mode: u32,
}

/// The image build context and the tag derived from its content.
pub struct ImageContext {
    pub files: Vec<ContextFile>,
    pub tag: String,
}

#[derive(Serialize)]
struct ImageVars<'a> {
    pgbox_version: &'a str,
    base_image: &'a str,
    pg_major: u32,
    /// PGDATA in the image: the data mount of the container spec.
    pgdata: &'a str,
    postgres_uid: u32,
    postgres_gid: u32,
    /// `[cluster]`: Patroni and etcd in the image.
    cluster: bool,
}

impl ImageContext {
    pub fn for_settings(s: &Settings) -> anyhow::Result<ImageContext> {
        let uid = s.uid.unwrap_or(crate::config::DEFAULT_UID);
        let vars = ImageVars {
            pgbox_version: env!("CARGO_PKG_VERSION"),
            base_image: &s.base_image,
            pg_major: s.pg_version,
            pgdata: DATA_MOUNT,
            postgres_uid: uid,
            postgres_gid: s.gid.unwrap_or(uid),
            cluster: s.replicas > 0,
        };
        let dir = Some(s.project_dir.as_path());
        let mut files = vec![ContextFile {
            path: "Containerfile".into(),
            body: render(dir, "image/Containerfile.j2", &vars)?.into_bytes(),
            mode: 0o644,
        }];
        // Every script under image/ goes to lib/ in the context, executable.
        for (name, _) in EMBEDDED {
            if let Some(rel) = name.strip_prefix("image/").filter(|r| r.ends_with(".sh")) {
                files.push(ContextFile {
                    path: format!("lib/{rel}"),
                    body: render(dir, name, &vars)?.into_bytes(),
                    mode: 0o755,
                });
            }
        }
        Ok(ImageContext {
            tag: format!("pgbox-postgres:{}-{}", s.pg_version, content_hash(&files)),
            files,
        })
    }

    /// The pooler's image: `pooler/Containerfile.j2` and its entrypoint, from `base`,
    /// tagged `pgbox-pooler:<hash>` (the PostgreSQL major does not enter it).
    pub fn pooler(s: &Settings, base: &str) -> anyhow::Result<ImageContext> {
        #[derive(Serialize)]
        struct Vars<'a> {
            pgbox_version: &'a str,
            base_image: &'a str,
        }
        let vars = Vars {
            pgbox_version: env!("CARGO_PKG_VERSION"),
            base_image: base,
        };
        let dir = Some(s.project_dir.as_path());
        let files = vec![
            ContextFile {
                path: "Containerfile".into(),
                body: render(dir, "pooler/Containerfile.j2", &vars)?.into_bytes(),
                mode: 0o644,
            },
            ContextFile {
                path: "entrypoint.sh".into(),
                body: render(dir, "pooler/entrypoint.sh", &vars)?.into_bytes(),
                mode: 0o755,
            },
        ];
        Ok(ImageContext {
            tag: format!("pgbox-pooler:{}", content_hash(&files)),
            files,
        })
    }

    /// The build context as an uncompressed tar archive.
    pub fn tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for f in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(f.body.len() as u64);
            header.set_mode(f.mode);
            header.set_mtime(0);
            header.set_cksum();
            b.append_data(&mut header, &f.path, f.body.as_slice())?;
        }
        Ok(b.into_inner()?)
    }
}

/// 12 hex digits of a hash over every file's path, mode and body.
fn content_hash(files: &[ContextFile]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.mode.to_le_bytes());
        h.update((f.body.len() as u64).to_le_bytes());
        h.update(&f.body);
    }
    crate::digest::hex(&h.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings(dir: &Path) -> Settings {
        Settings::resolve(&dir.join("pgbox.toml"), &[])
    }

    #[test]
    fn tag_follows_content() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let a = ImageContext::for_settings(&s).unwrap();
        let mut s2 = s.clone();
        s2.base_image = "postgres:16".into();
        let b = ImageContext::for_settings(&s2).unwrap();
        assert_ne!(a.tag, b.tag);
        assert_eq!(a.tag, ImageContext::for_settings(&s).unwrap().tag);
        let containerfile = String::from_utf8(b.files[0].body.clone()).unwrap();
        assert!(containerfile.contains("FROM postgres:16"));
    }

    /// The official postgres:18 image moved PGDATA to /var/lib/postgresql/18/docker
    /// and its VOLUME to /var/lib/postgresql; pgbox's image must still put PGDATA
    /// where the container spec mounts the data, for every major and base.
    #[test]
    fn pgdata_is_the_data_mount_on_every_major_and_base() {
        let tmp = tempfile::tempdir().unwrap();
        for (major, base) in [
            (15, "debian:bookworm-slim"),
            (17, "postgres:17"),
            (18, "debian:forky-slim"),
            (18, "postgres:18"),
        ] {
            let mut s = settings(tmp.path());
            s.pg_version = major;
            s.base_image = base.into();
            let ctx = ImageContext::for_settings(&s).unwrap();
            assert!(ctx.tag.starts_with(&format!("pgbox-postgres:{major}-")));
            let cf = String::from_utf8(ctx.files[0].body.clone()).unwrap();
            assert!(cf.contains(&format!("\nFROM {base}\n")), "{cf}");
            assert!(cf.contains(&format!("ENV PG_MAJOR={major} ")), "{cf}");
            let pgdata: Vec<&str> = cf
                .lines()
                .filter_map(|l| l.trim().strip_prefix("PGDATA="))
                .collect();
            assert_eq!(pgdata, [DATA_MOUNT], "{cf}");
            let code: String = cf.lines().filter(|l| !l.starts_with('#')).collect();
            assert!(!code.contains("18/docker"), "{cf}");
            assert!(
                cf.contains(r#"install -d -o postgres -g postgres -m 0700 "$PGDATA""#),
                "{cf}"
            );
        }
        assert!(DATA_MOUNT.starts_with("/var/lib/postgresql/"));
    }

    #[test]
    fn project_override_wins_and_changes_tag() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let before = ImageContext::for_settings(&s).unwrap().tag;
        let dir = tmp.path().join(".pgbox/templates/image");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(dir.join("runtime")).unwrap();
        std::fs::write(dir.join("runtime/healthcheck.sh"), "#!/bin/sh\nexit 0\n").unwrap();
        let ctx = ImageContext::for_settings(&s).unwrap();
        assert_ne!(ctx.tag, before);
        let hc = ctx
            .files
            .iter()
            .find(|f| f.path == "lib/runtime/healthcheck.sh")
            .unwrap();
        assert_eq!(hc.body, b"#!/bin/sh\nexit 0\n");
        assert_eq!(hc.mode, 0o755);
    }
}
