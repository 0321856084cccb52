//! Off-site copies of backups in an S3-compatible store (`[backup.remote]`).
//!
//! One object per backup, `<prefix>/<backup file name>` (`.age` added when it is
//! encrypted), and beside it `<that key>.json`, its manifest, written only after
//! the object was read back and matched: a listing goes by manifests, so an object
//! without one (an upload that did not finish or did not check out) never counts.
//! The S3 protocol is `object_store`'s (signing, multipart, retries with back-off);
//! this module owns the layout, the credentials ([`credentials`]), the streams
//! ([`upload`], [`fetch`]), the listing ([`listing`]) and retention ([`retention`]).
//! Errors are typed by the store's error kinds, never by their text.

pub mod credentials;
pub mod fetch;
pub mod listing;
pub mod ops;
pub mod retention;
pub mod ship;
pub mod upload;

use std::sync::{Arc, Once};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

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

/// The TLS stack's crypto (ring, as for the rest of pgbox: no OpenSSL, no C build).
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
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

    /// A store error as a `Fail` that says what was being done and what to check.
    pub fn fail(&self, doing: &str, e: object_store::Error) -> Fail {
        use object_store::Error as E;
        let what = format!("{doing} `{}`", self.cfg.url);
        match &e {
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                Fail::new(format!("the store refused the credentials while {what}: {e}"))
                    .hint("check the access key and secret (AWS_ACCESS_KEY_ID, the AWS profile, or `credentials_file`) and that they may use this bucket")
            }
            E::NotFound { .. } => Fail::new(format!("not found while {what}: {e}")).hint(format!(
                "check that the bucket `{}` exists (and `endpoint`, `region` in `[backup.remote]`)",
                self.cfg.bucket
            )),
            _ => Fail::new(format!("{what} failed: {e}")).hint(
                "check `endpoint`, `region` and `path_style` in `[backup.remote]` and that the store answers; each request was retried with back-off",
            ),
        }
    }
}
