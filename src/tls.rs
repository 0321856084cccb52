//! TLS material for the server: a local CA and server certificate (`--tls self-signed`),
//! or a certificate and key the user already has (`--tls files`, e.g. Let's Encrypt).
//!
//! The CA lives in `.pgbox/ca/` and never enters the container; the server's
//! certificate and key are placed in `.pgbox/tls/`, which is mounted read-only and
//! copied by the entrypoint to a postgres-owned folder with the key at mode 0600.
//! In `files` mode every `pgbox up` copies the configured files again, so a
//! renewed certificate is picked up. [`prepare_tls`] does what pgbox.toml asks
//! for, for `init` and `up` alike.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::config::{Settings, TlsMode};
use crate::error::Fail;
use crate::fsutil::{private_dir, write_atomic};

pub struct TlsPaths {
    pub ca_dir: PathBuf,
    pub server_dir: PathBuf,
}

impl TlsPaths {
    pub fn new(state_dir: &Path) -> TlsPaths {
        TlsPaths {
            ca_dir: state_dir.join("ca"),
            server_dir: state_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir.join("ca.crt")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.server_dir.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.server_dir.join("server.key")
    }
}

/// Create a CA and a server certificate for `names` unless they exist. True if created.
pub fn ensure_self_signed(
    paths: &TlsPaths,
    project: &str,
    names: &[String],
) -> anyhow::Result<bool> {
    if paths.ca_cert().is_file() && paths.server_cert().is_file() && paths.server_key().is_file() {
        return Ok(false);
    }
    private_dir(&paths.ca_dir, 0o700)?;
    private_dir(&paths.server_dir, 0o700)?;

    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("pgbox local CA for {project}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate().context("cannot generate the server key")?;
    let mut server = CertificateParams::new(names.to_vec())?;
    server.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let issuer = Issuer::new(ca, &ca_key);
    let cert = server.signed_by(&key, &issuer)?;

    write_atomic(
        &paths.ca_dir.join("ca.key"),
        ca_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomic(&paths.ca_cert(), ca_cert.pem().as_bytes(), 0o644)?;
    write_atomic(&paths.server_key(), key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&paths.server_cert(), cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

/// Copy a user's certificate and key into place. True if anything changed.
pub fn install_files(paths: &TlsPaths, cert: &Path, key: &Path) -> anyhow::Result<bool> {
    let read = |p: &Path, what: &str, marker: &str| -> anyhow::Result<Vec<u8>> {
        let bytes = std::fs::read(p).map_err(|e| {
            Fail::new(format!("cannot read the TLS {what} `{}`: {e}", p.display()))
                .hint("check `cert` and `key` under `[tls]` in pgbox.toml")
        })?;
        if !String::from_utf8_lossy(&bytes).contains(marker) {
            return Err(Fail::new(format!("`{}` is not a PEM {what}", p.display()))
                .hint("give the PEM files, e.g. Let's Encrypt's fullchain.pem and privkey.pem")
                .into());
        }
        Ok(bytes)
    };
    let cert_bytes = read(cert, "certificate", "-----BEGIN CERTIFICATE-----")?;
    let key_bytes = read(key, "private key", "PRIVATE KEY-----")?;
    private_dir(&paths.server_dir, 0o700)?;
    let mut changed = false;
    for (dest, bytes, mode) in [
        (paths.server_cert(), cert_bytes, 0o644),
        (paths.server_key(), key_bytes, 0o600),
    ] {
        if std::fs::read(&dest).ok().as_deref() != Some(bytes.as_slice()) {
            write_atomic(&dest, &bytes, mode)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Names for the self-signed server certificate.
fn tls_names(s: &Settings) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".into(),
        "::1".into(),
        s.container_name(),
    ];
    if !["127.0.0.1", "0.0.0.0", "::", "::1"].contains(&s.bind.as_str()) {
        names.push(s.bind.clone());
    }
    names
}

/// Create or refresh the TLS material the settings ask for. True if it changed.
pub fn prepare_tls(s: &Settings) -> anyhow::Result<bool> {
    let paths = TlsPaths::new(&s.state_dir());
    match s.tls {
        TlsMode::Off => Ok(false),
        TlsMode::SelfSigned => ensure_self_signed(&paths, &s.project, &tls_names(s)),
        TlsMode::Files => {
            let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) else {
                return Err(Fail::new("`[tls] mode = \"files\"` needs `cert` and `key`")
                    .hint("set `cert` and `key` under `[tls]` in pgbox.toml, e.g. fullchain.pem and privkey.pem")
                    .into());
            };
            install_files(&paths, cert, key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn self_signed_material_is_written_once_with_private_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(tmp.path());
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        assert!(ensure_self_signed(&paths, "p", &names).unwrap());
        assert!(!ensure_self_signed(&paths, "p", &names).unwrap());
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(paths.server_key()), 0o600);
        assert_eq!(mode(paths.ca_dir.join("ca.key")), 0o600);
        assert!(std::fs::read_to_string(paths.server_cert())
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn files_must_be_pem() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(tmp.path());
        let bad = tmp.path().join("bad.pem");
        std::fs::write(&bad, "hello").unwrap();
        let err = install_files(&paths, &bad, &bad).unwrap_err();
        assert!(
            err.to_string().contains("is not a PEM certificate"),
            "{err}"
        );
    }
}
