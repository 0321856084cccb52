//! Test support: a clean `pgbox` command, per-test projects, and the engine check.
//!
//! Every e2e test gets its own folder, project name and free port, and the
//! `Project` guard removes its container and data even when the test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

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

/// The engine a test drives: Docker, or rootful Podman through its Docker-compatible API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eng {
    Docker,
    Podman,
}

pub const PODMAN_SOCKET: &str = "unix:///run/podman/podman.sock";

impl Eng {
    /// The engine's own command-line tool (inspect, stop, kill, ... in tests).
    pub fn cli(self) -> &'static str {
        match self {
            Eng::Docker => "docker",
            Eng::Podman => "podman",
        }
    }
}

/// Fails (never skips) when no engine answers, saying how to start one.
pub fn require_engine() {
    require(Eng::Docker);
}

/// Fails (never skips) when `eng` does not answer, saying how to start it.
pub fn require(eng: Eng) {
    static CHECK: [OnceLock<Result<(), String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let r: &Result<(), String> = CHECK[eng as usize].get_or_init(|| {
        let mut c = Command::new("docker");
        if eng == Eng::Podman {
            c.args(["-H", PODMAN_SOCKET]);
        }
        let out = c
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        let answered = match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(text(&o.stderr)),
            Err(e) => Err(e.to_string()),
        };
        answered.and_then(|_| warm_image(eng, None))
    });
    if let Err(why) = r {
        panic!(
            "e2e tests need a running {} and it did not answer ({why}).\n\
             Start it with `sudo scripts/ensure-engine.sh` (installs docker.io and podman, starts dockerd \
             and `podman system service`, builds the offline base image), then rerun.",
            eng.cli()
        );
    }
}

/// Build the image once per engine and run (pgbox tags by content, so this is a cache hit
/// after the first), so parallel tests do not all build it. `major`: that PostgreSQL
/// major on its default base; None: pgbox's default major.
fn warm_image(eng: Eng, major: Option<u32>) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let version = major.map_or(String::new(), |m| format!("[postgres]\nversion = {m}\n"));
    std::fs::write(
        dir.path().join("pgbox.toml"),
        format!("[project]\nname = \"warmup\"\n{version}"),
    )
    .unwrap();
    let out = run(pgbox(dir.path()).args(["--engine", eng.cli(), "build"]));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`pgbox build` failed: {}", text(&out.stderr)))
    }
}

/// The engine answers and the image of PostgreSQL `major` (on its default base) is
/// built, once per engine and major however many tests ask at once.
pub fn require_major(eng: Eng, major: u32) {
    require(eng);
    /// One build (and its outcome) per engine and major.
    type Warm = Arc<OnceLock<Result<(), String>>>;
    static WARM: OnceLock<Mutex<std::collections::HashMap<(Eng, u32), Warm>>> = OnceLock::new();
    let cell = WARM
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((eng, major))
        .or_default()
        .clone();
    if let Err(why) = cell.get_or_init(|| warm_image(eng, Some(major))) {
        panic!(
            "the PostgreSQL {major} image did not build on {} ({why}).\n\
             Its base image is seeded by `sudo scripts/ensure-engine.sh`; run it, then rerun.",
            eng.cli()
        );
    }
}

/// A pgbox project in its own temporary folder, cleaned up on drop.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub port: u16,
    pub eng: Eng,
    /// The PostgreSQL major `init` asks for (`--pg-version`); None: pgbox's default.
    pub major: Option<u32>,
}

impl Project {
    pub fn new(tag: &str) -> Project {
        Project::on(tag, Eng::Docker)
    }

    /// A project driven through `eng`.
    pub fn on(tag: &str, eng: Eng) -> Project {
        Project::with_major(tag, eng, None)
    }

    /// A project driven through `eng` whose `init` asks for PostgreSQL `major`
    /// (None: pgbox's default); that major's image is built once, before.
    pub fn with_major(tag: &str, eng: Eng, major: Option<u32>) -> Project {
        match major {
            Some(m) => require_major(eng, m),
            None => require(eng),
        }
        let dir = tempfile::Builder::new()
            .prefix("pgbox-e2e-")
            .tempdir()
            .unwrap();
        let name = format!("t{}-{tag}", std::process::id());
        Project {
            dir,
            name,
            port: free_port(),
            eng,
            major,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = pgbox(self.path());
        if self.eng == Eng::Podman {
            c.args(["--engine", "podman"]);
        }
        c.args(args);
        c
    }

    /// Run the engine's own CLI (`docker` or `podman`) and return stdout (panics on failure).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(self.eng.cli())
            .args(args)
            .output()
            .expect("run the engine CLI");
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.eng.cli(),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `pgbox init --yes` with this project's name, port and major, plus `extra` flags.
    pub fn init(&self, extra: &[&str]) -> Output {
        let port = self.port.to_string();
        let major = self.major.map(|m| m.to_string());
        let mut args = vec!["init", "--yes", "--name", &self.name, "--port", &port];
        if let Some(m) = &major {
            args.extend(["--pg-version", m]);
        }
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

    /// The running server is of the major this project asked for (when it asked).
    pub fn assert_major(&self) {
        if let Some(m) = self.major {
            let v = self.sql("show server_version");
            assert!(v.starts_with(&format!("{m}.")), "PostgreSQL {m} runs: {v}");
        }
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
        // Remove the container and the data even when the test failed (an upgrade's
        // record would make `--purge` refuse; the tempdir holds both sides' folders).
        let _ = std::fs::remove_file(self.path().join(".pgbox/upgrade.json"));
        let _ = self.cmd(&["down", "--purge", "--yes", "-q"]).output();
        let _ = Command::new(self.eng.cli())
            .args(["rm", "-f", &self.container()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new(self.eng.cli())
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

/// The names in `dir`, sorted (none when it does not exist).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `docker-compose down -v` in a folder on drop, and the images the run built, even
/// when the test failed (the generated-compose tests).
pub struct ComposeDown(pub PathBuf, pub Vec<String>);

impl Drop for ComposeDown {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["down", "-v"])
            .current_dir(&self.0)
            .output();
        for image in &self.1 {
            let _ = Command::new("docker").args(["rmi", image]).output();
        }
    }
}
