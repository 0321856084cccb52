//! TLS for the migration client, with libpq's `sslmode` meanings, on rustls (ring):
//! `disable`, `prefer` and `require` encrypt without checking the certificate (as
//! libpq does without a root certificate), `verify-ca` checks the chain and
//! `verify-full` the chain and the host name.
//!
//! tokio-postgres knows only disable/prefer/require and no `sslrootcert`, so those
//! two parameters are taken out of the URL here ([`split_url`]) and the check is
//! this connector's. Roots come from `sslrootcert` (a PEM file, or `system`), else
//! `~/.postgresql/root.crt`, else the system's store. Channel binding is not
//! offered (SCRAM without `-PLUS`, which servers accept unless told otherwise).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::error::Fail;

/// What the certificate check asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `disable`: no TLS at all.
    Off,
    /// `prefer` or `require`: encrypted, certificate not checked.
    Encrypt { required: bool },
    /// `verify-ca` (`full: false`) or `verify-full`, against these roots
    /// (None: `~/.postgresql/root.crt`, else the system's store).
    Verify { full: bool, roots: Option<PathBuf> },
}

impl Check {
    /// The check for the project's own server (or its pooler), as `pgbox url` says:
    /// the project's CA verified with self-signed TLS, encryption required with
    /// certificate files, none when TLS is off.
    pub fn for_project(s: &crate::config::Settings) -> Check {
        match s.tls {
            crate::config::TlsMode::Off => Check::Off,
            crate::config::TlsMode::SelfSigned => Check::Verify {
                full: true,
                roots: Some(crate::tls::TlsPaths::new(&s.state_dir()).ca_cert()),
            },
            crate::config::TlsMode::Files => Check::Encrypt { required: true },
        }
    }
}

/// Take `sslmode` and `sslrootcert` out of a URL or `key=value` string.
pub fn split_url(url: &str) -> Result<(String, Check), Fail> {
    let (mut mode, mut root) = (None, None);
    let mut take = |k: &str, v: &str| match k {
        "sslmode" => {
            mode = Some(v.to_string());
            true
        }
        "sslrootcert" => {
            root = Some(v.to_string());
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        !take(k, &percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        url.split_whitespace()
            .filter(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                !take(k, v.trim_matches('\''))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let roots = root.filter(|r| r != "system").map(PathBuf::from);
    let check = match mode.as_deref().unwrap_or("prefer") {
        "disable" | "allow" => Check::Off,
        "prefer" => Check::Encrypt { required: false },
        "require" if roots.is_none() => Check::Encrypt { required: true },
        // libpq: `require` with a root certificate file behaves like `verify-ca`.
        "require" | "verify-ca" => Check::Verify { full: false, roots },
        "verify-full" => Check::Verify { full: true, roots },
        other => {
            return Err(Fail::new(format!("`sslmode={other}` is not a TLS mode"))
                .hint("use disable, prefer, require, verify-ca or verify-full"))
        }
    };
    Ok((rest, check))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |i: usize| {
            std::str::from_utf8(b.get(i..i + 2)?)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match (b[i], hex(i + 1)) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Check {
    /// The tokio-postgres mode for the negotiation.
    pub fn ssl_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self {
            Check::Off => SslMode::Disable,
            Check::Encrypt { required: false } => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }

    /// The connector for this check.
    pub fn connector(&self) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let verifier: Arc<dyn ServerCertVerifier> = match self {
            Check::Off | Check::Encrypt { .. } => Arc::new(NoCheck(provider)),
            Check::Verify { full, roots } => {
                let store = root_store(roots.as_deref())?;
                let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()?;
                Arc::new(Chain { inner, full: *full })
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Tls(Arc::new(config)))
    }
}

fn root_store(roots: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"));
    let file = roots
        .map(Path::to_path_buf)
        .or(home.filter(|h| h.is_file()));
    match file {
        Some(f) => {
            for cert in CertificateDer::pem_file_iter(&f).map_err(|e| {
                Fail::new(format!(
                    "cannot read the root certificate `{}`: {e}",
                    f.display()
                ))
            })? {
                store.add(cert.map_err(|e| Fail::new(format!("`{}`: {e}", f.display())))?)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    Ok(store)
}

/// `prefer`/`require`: any certificate (libpq's meaning without a root file); the
/// handshake signature is still checked.
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

/// `verify-ca` / `verify-full`: the chain, and the name only for full.
#[derive(Debug)]
struct Chain {
    inner: Arc<WebPkiServerVerifier>,
    full: bool,
}

macro_rules! signatures {
    ($provider:expr) => {
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &$provider(self).signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &$provider(self).signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            $provider(self)
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    signatures!(|s: &NoCheck| s.0.clone());
}

impl ServerCertVerifier for Chain {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        mid: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end, mid, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.full => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    signatures!(|_: &Chain| ring());
}

/// The connector handed to tokio-postgres (clonable, for cancel requests too).
#[derive(Clone)]
pub struct Tls(Arc<ClientConfig>);

pub struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for Tls {
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
        Ok(Connect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Connect {
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let c = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { c.connect(self.name, stream).await.map(Stream) })
    }
}

pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (u, c) = split_url("postgresql://a@h:5/d?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt&application_name=x").unwrap();
        assert_eq!(u, "postgresql://a@h:5/d?application_name=x");
        assert_eq!(
            c,
            Check::Verify {
                full: true,
                roots: Some("/tmp/ca.crt".into())
            }
        );
        assert_eq!(
            split_url("postgres://a@h/d").unwrap().1,
            Check::Encrypt { required: false }
        );
        assert_eq!(
            split_url("postgres://a@h/d?sslmode=require").unwrap(),
            ("postgres://a@h/d".into(), Check::Encrypt { required: true })
        );
        assert_eq!(
            split_url("host=h sslmode=disable dbname=d").unwrap(),
            ("host=h dbname=d".into(), Check::Off)
        );
        assert!(split_url("postgres://h/d?sslmode=sometimes").is_err());
    }
}
