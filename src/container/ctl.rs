//! The typed client for `pgbox-ctl`, the control script pgbox puts in the image
//! (templates/image/runtime/ctl.sh), and the one gate every command that needs a
//! working server passes: the container runs, belongs to this project, and is not
//! in maintenance mode.
//!
//! Every verb the host uses is a [`Verb`] here, so the words pgbox and the script
//! agree on live in one place; streaming verbs (dump, receive, save-stream) give
//! their argv through [`Verb::argv`] to the engine's stream execs.

use crate::config::Settings;
use crate::engine::{Engine, ExecOutput, ExecSpec};
use crate::error::Fail;

/// A `pgbox-ctl` verb and its arguments.
#[derive(Debug, Clone)]
pub enum Verb<'a> {
    /// The entrypoint's state.
    State,
    /// Check the rendered configuration, reload, list settings pending a restart.
    Reload,
    /// Fallback mode: save a consistent live copy now.
    Save,
    /// A consistent copy of the running cluster on stdout (tar, zstd).
    SaveStream,
    /// Stop PostgreSQL and keep the container up (`true`), or start it again.
    Maintenance(bool),
    /// Server and pg_dump versions, one per line.
    Versions,
    /// A dump of one database on stdout.
    Dump {
        database: &'a str,
        format: &'a str,
        compression: &'a str,
        level: u32,
    },
    /// Roles and tablespaces on stdout.
    Globals { compression: &'a str, level: u32 },
    /// stdin, decompressed, to `dest` (a folder with `tar`), owned by postgres.
    Receive {
        dest: &'a str,
        compression: &'a str,
        tar: bool,
    },
}

impl Verb<'_> {
    /// `pgbox-ctl VERB ARGS...`
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec!["pgbox-ctl".to_string()];
        let words: Vec<String> = match self {
            Verb::State => vec!["state".into()],
            Verb::Reload => vec!["reload".into()],
            Verb::Save => vec!["save".into()],
            Verb::SaveStream => vec!["save-stream".into()],
            Verb::Maintenance(on) => {
                vec!["maintenance".into(), if *on { "on" } else { "off" }.into()]
            }
            Verb::Versions => vec!["versions".into()],
            Verb::Dump {
                database,
                format,
                compression,
                level,
            } => vec![
                "dump".into(),
                database.to_string(),
                format.to_string(),
                compression.to_string(),
                level.to_string(),
            ],
            Verb::Globals { compression, level } => vec![
                "globals".into(),
                "-".into(),
                "-".into(),
                compression.to_string(),
                level.to_string(),
            ],
            Verb::Receive {
                dest,
                compression,
                tar,
            } => {
                let mut w = vec!["receive".into(), dest.to_string(), compression.to_string()];
                if *tar {
                    w.push("tar".into());
                }
                w
            }
        };
        v.extend(words);
        v
    }

    /// The exec that runs this verb as root (the script drops privileges itself).
    pub fn spec(&self) -> ExecSpec {
        ExecSpec {
            cmd: self.argv(),
            user: Some("0".into()),
            env: Vec::new(),
        }
    }
}

/// Run a verb and collect its output.
pub async fn run(engine: &Engine, container: &str, verb: Verb<'_>) -> anyhow::Result<ExecOutput> {
    Ok(engine.exec_capture(container, &verb.spec()).await?)
}

/// The entrypoint's state (RUNNING, MAINTENANCE, ...), or None when unknown.
pub async fn state(engine: &Engine, container: &str) -> Option<String> {
    let out = run(engine, container, Verb::State).await.ok()?;
    (out.code == 0).then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The entrypoint's state, then the trimmed stdout of `argv` run as root when the state
/// could be read (None when it fails), in ONE exec: `pgbox status` runs on every
/// call, and an exec costs far more than the work it does (about 60 ms more for a
/// second one on a loaded machine, against 15 ms for psql itself).
pub async fn state_then(
    engine: &Engine,
    container: &str,
    argv: &[&str],
) -> (Option<String>, Option<String>) {
    // `"$@"` runs argv as given: nothing of it is parsed by the shell.
    let mut cmd: Vec<String> = [
        "sh",
        "-c",
        r#"pgbox-ctl state || exit; echo; exec "$@""#,
        "sh",
    ]
    .map(String::from)
    .to_vec();
    cmd.extend(argv.iter().map(|a| a.to_string()));
    let spec = ExecSpec {
        cmd,
        user: Some("0".into()),
        env: Vec::new(),
    };
    let Ok(out) = engine.exec_capture(container, &spec).await else {
        return (None, None);
    };
    split_state_then(out.code, &String::from_utf8_lossy(&out.stdout))
}

/// The state and the command's output from [`state_then`]'s stdout: the blank line
/// between them is only printed once the state was read; the command's output
/// counts only when it, the last thing run, exited 0.
fn split_state_then(code: i64, stdout: &str) -> (Option<String>, Option<String>) {
    match stdout.split_once("\n\n") {
        Some((state, rest)) => (
            Some(state.trim().to_string()),
            Some(rest.trim())
                .filter(|r| code == 0 && !r.is_empty())
                .map(String::from),
        ),
        None => (None, None),
    }
}

/// The server's and the container's pg_dump versions (for backup manifests); both
/// must be known, or the manifest would record empty strings.
pub async fn versions(engine: &Engine, container: &str) -> anyhow::Result<(String, String)> {
    let out = run(engine, container, Verb::Versions).await?;
    parse_versions(
        out.code,
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
    .map_err(Into::into)
}

/// `pgbox-ctl versions`'s output: the server's version, then pg_dump's.
fn parse_versions(code: i64, stdout: &str, stderr: &str) -> Result<(String, String), Fail> {
    let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    match (code, lines.next(), lines.next()) {
        (0, Some(server), Some(dump)) => Ok((server.to_string(), dump.to_string())),
        (code, ..) => Err(Fail::new(format!(
            "cannot read the server and pg_dump versions in the container (exit {code}): {}",
            stderr.trim()
        ))
        .hint("see `pgbox logs`; the backup was not started")),
    }
}

/// What a backup needs before it dumps, from [`ready_for_backup`].
#[derive(Debug, Clone)]
pub struct BackupGate {
    /// The running container (the leader, in a cluster).
    pub container: String,
    /// Its image, for the manifest.
    pub image: String,
    /// The server's and the container's pg_dump versions.
    pub versions: (String, String),
    /// The lines `cleanup` printed.
    pub cleaned: Vec<String>,
}

/// Separates the parts of [`ready_for_backup`]'s output (never a state, a path or a version).
const PART: &str = "@pgbox-part@";

/// [`ready`], then `cleanup` (a shell script, run as root; its stdout lines come back,
/// its stderr is dropped), then [`versions`], in ONE exec instead of three: an exec
/// costs far more than what these do (about 80 ms on Docker, 150-200 ms on Podman,
/// against a few ms of work). The image comes from the inspect that checks the
/// container runs. Errors are those of the three steps: the maintenance refusal
/// (and then `cleanup` does not run), a failed exec, unreadable versions.
pub async fn ready_for_backup(
    engine: &Engine,
    s: &Settings,
    cleanup: &str,
) -> anyhow::Result<BackupGate> {
    let (container, image) = if super::patroni::clustered(s) {
        let c = super::patroni::leader(engine, s).await?;
        let image = engine.inspect(&c).await?.map(|i| i.image).ok_or_else(|| {
            Fail::new(format!(
                "container `{c}` disappeared while the backup started"
            ))
            .hint("run `pgbox up` and back up again")
        })?;
        (c, image)
    } else {
        let c = running_info(engine, s).await?;
        (c.name, c.image)
    };
    // An unreadable state is not a refusal (as in `state`): the versions still decide.
    let script = format!(
        r#"st=$(pgbox-ctl state 2>/dev/null) || st=
printf '%s\n{PART}\n' "$st"
[ "$st" != MAINTENANCE ] || exit 0
(sh -c "$1") 2>/dev/null
printf '{PART}\n'
exec pgbox-ctl versions"#
    );
    let spec = ExecSpec {
        cmd: vec![
            "sh".into(),
            "-c".into(),
            script,
            "pgbox-backup-gate".into(),
            cleanup.into(),
        ],
        user: Some("0".into()),
        env: Vec::new(),
    };
    let out = engine.exec_capture(&container, &spec).await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let sep = format!("{PART}\n");
    let mut parts = stdout.split(sep.as_str());
    if parts.next().map(str::trim) == Some("MAINTENANCE") {
        return Err(maintenance(s).into());
    }
    let cleaned = parts
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let versions = parse_versions(
        out.code,
        parts.next().unwrap_or_default(),
        &String::from_utf8_lossy(&out.stderr),
    )?;
    Ok(BackupGate {
        container,
        image,
        versions,
        cleaned,
    })
}

/// [`running`] with what the inspect said (one project container, not a cluster).
async fn running_info(
    engine: &Engine,
    s: &Settings,
) -> anyhow::Result<crate::engine::ContainerInfo> {
    let name = s.container_name();
    match engine.inspect(&name).await? {
        Some(c) if c.running => {
            super::spec::check_ownership(s, &c.labels)?;
            Ok(c)
        }
        _ => Err(not_running(s).into()),
    }
}

fn not_running(s: &Settings) -> Fail {
    Fail::new(format!("PostgreSQL for `{}` is not running", s.project))
        .hint("start it with `pgbox up`")
}

fn maintenance(s: &Settings) -> Fail {
    Fail::new(format!(
        "`{}` is in maintenance mode: PostgreSQL is stopped",
        s.project
    ))
    .hint("run `pgbox maintenance off` to start it again")
}

/// A running container of this project, or an error saying how to start it.
pub async fn running(engine: &Engine, s: &Settings) -> anyhow::Result<String> {
    if super::patroni::clustered(s) {
        // A cluster: whichever node leads now (backup, restore, psql, scheduled runs).
        return super::patroni::leader(engine, s).await;
    }
    Ok(running_info(engine, s).await?.name)
}

/// The gate for work that needs the server: running, ours, not in maintenance.
pub async fn ready(engine: &Engine, s: &Settings) -> anyhow::Result<String> {
    let c = running(engine, s).await?;
    refuse_maintenance(engine, s, &c).await?;
    Ok(c)
}

/// An error when the container is in maintenance mode (PostgreSQL stopped on purpose).
pub async fn refuse_maintenance(engine: &Engine, s: &Settings, c: &str) -> anyhow::Result<()> {
    if state(engine, c).await.as_deref() == Some("MAINTENANCE") {
        return Err(maintenance(s).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_then_reads_each_part_only_when_it_was_produced() {
        let both = split_state_then(0, "RUNNING\n\n17.6 (Debian 17.6-1)\n");
        assert_eq!(
            both,
            (Some("RUNNING".into()), Some("17.6 (Debian 17.6-1)".into()))
        );
        // psql failed (no server in maintenance mode): the state still counts.
        assert_eq!(
            split_state_then(2, "MAINTENANCE\n\n"),
            (Some("MAINTENANCE".into()), None)
        );
        assert_eq!(
            split_state_then(1, "RUNNING\n\npartial"),
            (Some("RUNNING".into()), None)
        );
        // pgbox-ctl state failed: nothing.
        assert_eq!(split_state_then(1, ""), (None, None));
        assert_eq!(split_state_then(0, "RUNNING\n"), (None, None));
    }

    #[test]
    fn verbs_spell_what_the_script_reads() {
        let d = Verb::Dump {
            database: "app",
            format: "custom",
            compression: "zstd",
            level: 3,
        };
        assert_eq!(
            d.argv(),
            ["pgbox-ctl", "dump", "app", "custom", "zstd", "3"]
        );
        let r = Verb::Receive {
            dest: "/tmp/x/dump",
            compression: "none",
            tar: true,
        };
        assert_eq!(
            r.argv(),
            ["pgbox-ctl", "receive", "/tmp/x/dump", "none", "tar"]
        );
        assert_eq!(
            Verb::Maintenance(false).argv(),
            ["pgbox-ctl", "maintenance", "off"]
        );
        // Every verb must be one the script's case statement knows.
        let script = include_str!("../../templates/image/runtime/ctl.sh");
        for v in [
            Verb::State,
            Verb::Reload,
            Verb::Save,
            Verb::SaveStream,
            Verb::Maintenance(true),
            Verb::Versions,
            d,
            Verb::Globals {
                compression: "gzip",
                level: 6,
            },
            r,
        ] {
            let word = &v.argv()[1];
            assert!(
                script.contains(&format!("\n{word})"))
                    || script.contains(&format!("| {word})"))
                    || script.contains(&format!("\n{word} |")),
                "ctl.sh has no `{word}` verb"
            );
        }
    }
}
