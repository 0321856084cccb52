//! Test support: a clean `pgbox` command, per-test projects, and the engine check.
//!
//! Every e2e test gets its own folder, project name and free port, and the
//! `Project` guard removes its container and data even when the test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgbox"))
}

/// `pgbox` with a clean environment: no PGBOX_* from the caller, no user config, no colour.
pub fn pgbox(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PGBOX_") {
            c.env_remove(k);
        }
    }
    c.env("XDG_CONFIG_HOME", dir.join(".test-xdg"));
    c.env("NO_COLOR", "1");
    c.stdin(Stdio::null());
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run pgbox")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Panics with the reason when the command did not exit 0.
pub fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed: {:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        cmd,
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails (never skips) when no engine answers, saying how to start one.
pub fn require_engine() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let r: &Result<(), String> = CHECK.get_or_init(|| {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(text(&o.stderr)),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(why) = r.as_ref().and_then(|_| warm_image()) {
        panic!(
            "e2e tests need a running container engine and none answered ({why}).\n\
             Start one with `sudo scripts/ensure-engine.sh` (installs docker.io, starts dockerd, \
             builds the offline base image), then rerun."
        );
    }
}

/// Build the image once for the whole run, so parallel tests do not all build it.
fn warm_image() -> Result<(), &'static String> {
    static BUILD: OnceLock<Result<(), String>> = OnceLock::new();
    BUILD
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("pgbox.toml"),
                "[project]\nname = \"warmup\"\n",
            )
            .unwrap();
            let out = run(pgbox(dir.path()).arg("build"));
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("`pgbox build` failed: {}", text(&out.stderr)))
            }
        })
        .as_ref()
        .map(|_| ())
}

/// A pgbox project in its own temporary folder, cleaned up on drop.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub port: u16,
}

impl Project {
    pub fn new(tag: &str) -> Project {
        require_engine();
        let dir = tempfile::Builder::new()
            .prefix("pgbox-e2e-")
            .tempdir()
            .unwrap();
        let name = format!("t{}-{tag}", std::process::id());
        Project {
            dir,
            name,
            port: free_port(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = pgbox(self.path());
        c.args(args);
        c
    }

    /// `pgbox init --yes` with this project's name and port, plus `extra` flags.
    pub fn init(&self, extra: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut args = vec!["init", "--yes", "--name", &self.name, "--port", &port];
        args.extend_from_slice(extra);
        ok(&mut self.cmd(&args))
    }

    pub fn up(&self) -> Output {
        ok(&mut self.cmd(&["up"]))
    }

    /// `pgbox psql -c SQL -At` and its stdout, trimmed.
    pub fn sql(&self, sql: &str) -> String {
        let out = ok(&mut self.cmd(&["psql", "-X", "-A", "-t", "-c", sql]));
        text(&out.stdout).trim().to_string()
    }

    pub fn container(&self) -> String {
        format!("pgbox-{}", self.name)
    }

    pub fn password(&self) -> String {
        std::fs::read_to_string(self.path().join(".pgbox/secrets/postgres_password"))
            .unwrap()
            .trim_end_matches('\n')
            .to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Remove the container and the data even when the test failed.
        let _ = self.cmd(&["down", "--purge", "--yes", "-q"]).output();
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &format!("pgbox-{}-data", self.name)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Run `docker` and return stdout (panics on failure).
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Host `psql` against a URL, with the password in the environment (never in argv).
pub fn host_psql(url: &str, password: &str, sql: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-A", "-t", "-c", sql, url])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .expect("host psql (apt-get install postgresql-client; scripts/ensure-engine.sh does it)")
}
