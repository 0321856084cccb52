//! The S3-compatible test server: moto's server mode, installed by
//! `scripts/ensure-s3.sh`, one per test on a free 127.0.0.1 port, with
//! authentication on (an IAM user and key made in the server's first requests), so
//! wrong credentials are refused as a real store refuses them. Killed on drop.
//! A missing moto fails the test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::support::{free_port, text};

pub const BUCKET: &str = "pgbox-test";

fn venv() -> PathBuf {
    PathBuf::from(
        std::env::var("PGBOX_MOTO_VENV").unwrap_or_else(|_| "/opt/pgbox-test/moto".into()),
    )
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/s3_helper.py")
}

pub struct S3 {
    child: Option<Child>,
    pub port: u16,
    pub key_id: String,
    pub secret: String,
    log: tempfile::NamedTempFile,
}

impl S3 {
    pub fn start() -> S3 {
        let mut s = S3 {
            child: None,
            port: free_port(),
            key_id: String::new(),
            secret: String::new(),
            log: tempfile::NamedTempFile::new().unwrap(),
        };
        s.launch();
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start the server (fresh: moto keeps everything in memory), make the key and
    /// the bucket.
    pub fn launch(&mut self) {
        let bin = venv().join("bin/moto_server");
        assert!(
            bin.exists(),
            "the S3 test server (moto) is not installed at `{}`: run `bash scripts/ensure-s3.sh`",
            bin.display()
        );
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            // The first three requests (IAM user, key, policy) need no signature.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(self.log.reopen().unwrap())
            .stderr(self.log.reopen().unwrap())
            .spawn()
            .expect("start moto_server");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "moto_server did not listen: {}",
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.py_as(&["setup", &self.endpoint(), BUCKET], "setup", "setup");
        let line = text(&out.stdout);
        let (id, secret) = line.trim().split_once(' ').expect("key id and secret");
        self.key_id = id.to_string();
        self.secret = secret.to_string();
    }

    /// Stop the server now (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn py_as(&self, args: &[&str], id: &str, secret: &str) -> Output {
        let out = Command::new(venv().join("bin/python"))
            .arg(helper())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .stdin(Stdio::null())
            .output()
            .expect("run the S3 helper");
        assert!(
            out.status.success(),
            "s3_helper {args:?} failed: {}",
            text(&out.stderr)
        );
        out
    }

    pub fn py(&self, args: &[&str]) -> Output {
        self.py_as(args, &self.key_id, &self.secret)
    }

    /// Every key in the bucket, and the number of multipart uploads in progress.
    pub fn keys(&self) -> (Vec<String>, usize) {
        let out = text(&self.py(&["keys", &self.endpoint(), BUCKET]).stdout);
        let mut keys: Vec<String> = out.lines().map(str::to_string).collect();
        let uploads = keys
            .pop()
            .and_then(|l| l.strip_prefix("uploads=").and_then(|n| n.parse().ok()))
            .expect("uploads line");
        (keys, uploads)
    }

    pub fn put(&self, key: &str, bytes: &[u8]) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        self.py(&[
            "put",
            &self.endpoint(),
            BUCKET,
            key,
            f.path().to_str().unwrap(),
        ]);
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        let f = tempfile::NamedTempFile::new().unwrap();
        self.py(&[
            "get",
            &self.endpoint(),
            BUCKET,
            key,
            f.path().to_str().unwrap(),
        ]);
        std::fs::read(f.path()).unwrap()
    }

    /// A process that exits once a multipart upload is in progress.
    pub fn watch_for_upload(&self, secs: u32) -> Child {
        Command::new(venv().join("bin/python"))
            .arg(helper())
            .args(["wait-upload", &self.endpoint(), BUCKET, &secs.to_string()])
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .stdout(Stdio::null())
            .spawn()
            .expect("run the S3 helper")
    }

    /// `[backup.remote]` for this server, under `prefix`.
    pub fn toml(&self, prefix: &str) -> String {
        format!(
            "\n[backup.remote]\nurl = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"{}\"\npath_style = true\n",
            self.endpoint()
        )
    }

    /// Give `cmd` this server's credentials in the AWS environment variables.
    pub fn creds<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
    }
}
