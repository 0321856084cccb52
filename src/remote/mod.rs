//! Off-site copies of backups in an S3-compatible store (`[backup.remote]`).
//!
//! One object per backup, `<prefix>/<backup file name>` (`.age` added when it is
//! encrypted), and beside it `<that key>.json`, its manifest, written only after
//! the object was read back and matched: a listing goes by manifests, so an object
//! without one (an upload that did not finish or did not check out) never counts.
//! The S3 protocol is `object_store`'s (signing, multipart, retries with back-off);
//! this module owns the layout, the credentials ([`credentials`]), the streams
//! ([`upload`], [`fetch`]) and the listing ([`listing`]); retention and the
//! operations that hand a download to verify and restore are `backup::offsite`.
//! Errors are typed by the store's error kinds, never by their text.

pub mod credentials;
pub mod fetch;
pub mod listing;
pub mod ship;
pub mod upload;

use std::sync::{Arc, Once};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, ObjectStoreExt, RetryConfig};

use crate::config::{RemoteSettings, Settings};
use crate::error::{Fail, EXIT_USAGE};

/// A connection to the configured store.
#[derive(Clone)]
pub struct Remote {
    pub(crate) store: Arc<AmazonS3>,
    pub cfg: RemoteSettings,
}

/// Retries of each request: 6 tries, back-off from 200 ms doubling to 5 s, at
/// most 60 s per request; connect within 10 s; a part may take 5 minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
    }
}

/// The TLS stack's crypto (ring, as for the rest of pgbox: no OpenSSL, no C build);
/// and glibc's allocator told to map buffers of 1 MiB and more on their own and
/// give them back when freed. By default it raises that threshold to the size of
/// the last such buffer freed, after which the 5 MiB parts come from per-thread
/// heaps that keep them: peak RSS measured 41 MB shipping a 330 MB dump that way,
/// against a 30 MB target.
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets a number inside glibc's allocator.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    });
}

impl Remote {
    /// The store of `[backup.remote]`; an error when it is not configured.
    pub fn connect(s: &Settings) -> Result<Remote, Fail> {
        let cfg = s.remote.clone().ok_or_else(|| {
            Fail::new("no off-site store is configured")
                .hint("add `[backup.remote]` with `url = \"s3://bucket/prefix\"` to pgbox.toml")
                .code(EXIT_USAGE)
        })?;
        Self::with(cfg, &|k| std::env::var(k).ok())
    }

    pub fn with(cfg: RemoteSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Remote, Fail> {
        install_crypto();
        let c = credentials::find(&cfg, env)?;
        let http = cfg
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(c.access_key_id)
            .with_secret_access_key(c.secret_access_key)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(retry())
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(http)
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            );
        if let Some(t) = c.session_token {
            b = b.with_token(t);
        }
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        let store = b.build().map_err(|e| {
            Fail::new(format!("cannot set up the store `{}`: {e}", cfg.url))
                .hint("check `[backup.remote]` in pgbox.toml (url, endpoint, region)")
        })?;
        Ok(Remote {
            store: Arc::new(store),
            cfg,
        })
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> Key {
        match self.cfg.prefix.as_str() {
            "" => Key::from(name),
            p => Key::from(format!("{p}/{name}")),
        }
    }

    /// `s3://bucket/prefix/name`.
    pub fn url_of(&self, name: &str) -> String {
        format!("s3://{}/{}", self.cfg.bucket, self.key(name))
    }

    /// A store error, with a `Fail` saying what was being done and what to check;
    /// the store's own message follows as the cause.
    pub fn fail(&self, doing: &str, e: object_store::Error) -> anyhow::Error {
        self.classify(doing, e, false)
    }

    /// As [`Remote::fail`], for requests on the bucket itself (starting an upload,
    /// listing), where "not found" can only mean the bucket.
    pub fn fail_bucket(&self, doing: &str, e: object_store::Error) -> anyhow::Error {
        self.classify(doing, e, true)
    }

    /// A failed listing: the store's list errors carry no kind, so a probe (a HEAD
    /// of a key that need not exist, whose errors do) tells refused credentials from
    /// a missing bucket.
    pub async fn list_failed(&self, e: object_store::Error) -> anyhow::Error {
        use object_store::Error as E;
        match self.store.head(&self.key(".pgbox-probe")).await {
            Err(
                probe @ (E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::NotFound { .. }),
            ) => self.classify("listing", probe, true),
            _ => self.classify("listing", e, true),
        }
    }

    fn classify(&self, doing: &str, e: object_store::Error, bucket: bool) -> anyhow::Error {
        use object_store::Error as E;
        let url = &self.cfg.url;
        let fail = match &e {
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                Fail::new(format!("the store refused the credentials while {doing} `{url}`"))
                    .hint("check the access key and secret (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the AWS profile, or `credentials_file`) and that they may use this bucket")
            }
            E::NotFound { .. } if bucket => Fail::new(format!(
                "the bucket `{}` does not exist (while {doing} `{url}`)",
                self.cfg.bucket
            ))
            .hint("create the bucket, or fix `url`, `endpoint` and `region` in `[backup.remote]`"),
            E::NotFound { .. } => Fail::new(format!("not found while {doing} `{url}`"))
                .hint("`pgbox backup list --remote` shows what the store holds"),
            _ => Fail::new(format!("{doing} `{url}` failed")).hint(
                "check `endpoint`, `region` and `path_style` in `[backup.remote]` and that the store answers; each request was retried with back-off",
            ),
        };
        anyhow::Error::new(e).context(fail)
    }
}
