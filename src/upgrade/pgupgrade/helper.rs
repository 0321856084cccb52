//! The container pg_upgrade runs in: idle until pgbox execs into it, with the
//! folder holding both clusters mounted once, and commands run in it as the postgres
//! user (with `CAP_DAC_OVERRIDE` to traverse the private `.pgbox` folder).

use std::path::Path;

use crate::config::Settings;
use crate::container::spec;
use crate::engine::{ContainerSpec, Engine, ExecOutput, ExecSpec, MountSource, MountSpec};
use crate::error::Fail;
use crate::state::Decision;

use super::super::workers;
use super::{ROOT, WORK};

/// The pg_upgrade container: the new cluster's worker name (so `up`, a failed
/// upgrade and `--rollback` remove it like the dump method's), idle until pgbox
/// execs into it, with the common folder and the project's configuration mounted.
pub fn helper_spec(
    old: &Settings,
    new: &Settings,
    tag: &str,
    d: &Decision,
    root: &Path,
) -> ContainerSpec {
    let base = spec::container_spec(new, tag, d);
    let mut s = ContainerSpec::oneshot(workers::target_name(old), tag.to_string());
    s.labels.insert(
        crate::engine::LABEL_PROJECT.to_string(),
        "-upgrade".to_string(),
    );
    s.entrypoint = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("echo {}; exec sleep infinity", spec::READY_MARKER),
    ]);
    s.user = Some("0:0".into());
    s.mounts = base
        .mounts
        .into_iter()
        .filter(|m| m.target != spec::DATA_MOUNT && m.target != "/etc/pgbox/initdb.d")
        .collect();
    s.mounts.push(MountSpec {
        source: MountSource::Bind(root.to_path_buf()),
        target: ROOT.into(),
        read_only: false,
    });
    s
}

/// A command as the postgres user, able to traverse the mounted folder.
fn as_postgres(cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--inh-caps=+dac_override",
        "--ambient-caps=+dac_override",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

/// The pg_upgrade container, and where it sees each cluster.
pub struct Helper<'a> {
    pub engine: &'a Engine,
    pub name: String,
    pub user: String,
    pub old_major: u32,
    pub old_dir: String,
    pub new_dir: String,
}

impl Helper<'_> {
    pub async fn exec(&self, cmd: &[&str], env: Vec<String>) -> anyhow::Result<ExecOutput> {
        let spec = ExecSpec {
            cmd: as_postgres(cmd),
            user: Some("root".into()),
            env,
        };
        Ok(self.engine.exec_capture(&self.name, &spec).await?)
    }

    /// Run `cmd`; fail with its output's last lines when it fails.
    pub async fn must(&self, what: &str, cmd: &[&str], env: Vec<String>) -> anyhow::Result<String> {
        let out = self.exec(cmd, env).await?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.code != 0 {
            let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            return Err(Fail::new(format!(
                "{what} failed (exit {}):\n  {}",
                out.code,
                tail.join("\n  ")
            ))
            .into());
        }
        Ok(stdout)
    }

    /// SQL on the new server's private socket; stdout, trimmed.
    pub async fn sql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = self
            .must(
                &format!("psql in database `{db}`"),
                &[
                    "psql",
                    "--no-psqlrc",
                    "-qAt",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    WORK,
                    "-U",
                    &self.user,
                    "-d",
                    db,
                    "-c",
                    sql,
                ],
                Vec::new(),
            )
            .await?;
        Ok(out.trim().to_string())
    }

    pub fn old_libs(&self) -> Vec<String> {
        vec![format!(
            "LD_LIBRARY_PATH=/usr/local/lib/pgbox-pg{}-libs",
            self.old_major
        )]
    }
}
