//! How clients reach the server: the connection URL, and the warning when the
//! server listens beyond this machine.
//!
//! The URL depends on pgbox.toml and the TLS mode only, so `pgbox url` answers
//! without an engine; `up`, `status` and `init` print the same string and the
//! same warning from here.

use crate::config::{Settings, TlsMode};
use crate::printer::Printer;
use crate::tls::TlsPaths;

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query string `pgbox url` appends for TLS.
pub fn tls_params(s: &Settings) -> Option<String> {
    match s.tls {
        TlsMode::Off => None,
        TlsMode::SelfSigned => Some(format!(
            "sslmode=verify-full&sslrootcert={}",
            TlsPaths::new(&s.state_dir()).ca_cert().display()
        )),
        TlsMode::Files => Some("sslmode=require".into()),
    }
}

/// `postgresql://user[:password]@host:port/db`
pub fn url(s: &Settings, password: Option<&str>) -> String {
    url_at(s, s.port, password)
}

/// The same URL through the pooler (`[pooler] port`).
pub fn pooled_url(s: &Settings, password: Option<&str>) -> String {
    url_at(s, s.pooler.port, password)
}

fn url_at(s: &Settings, port: u16, password: Option<&str>) -> String {
    let auth = match password {
        Some(p) => format!("{}:{}", percent_encode(&s.user), percent_encode(p)),
        None => percent_encode(&s.user),
    };
    let query = tls_params(s).map(|q| format!("?{q}")).unwrap_or_default();
    format!(
        "postgresql://{auth}@{}:{}/{}{query}",
        s.url_host(),
        port,
        percent_encode(&s.database)
    )
}

/// Warn when PostgreSQL listens beyond this machine (`bind` not a loopback address):
/// with TLS off the password and data cross the network in clear, so say how to turn
/// TLS on; with TLS on, still say the server is reachable from the network.
pub fn warn_if_public(s: &Settings, p: &Printer) {
    let loopback = s
        .bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return;
    }
    let at = format!("`{}` port {}", s.bind, s.port);
    if s.tls == TlsMode::Off {
        p.warn(format!(
            "PostgreSQL listens on {at}, reachable from the network, with TLS off: passwords and data \
             cross it in clear; turn TLS on with `mode = \"self-signed\"` (or `\"files\"`) under `[tls]` \
             in pgbox.toml (`pgbox init --tls self-signed` for a new project) and run `pgbox up`, \
             or set `bind = \"127.0.0.1\"` to keep it on this machine"
        ));
    } else {
        p.warn(format!(
            "PostgreSQL listens on {at}, reachable from the network (TLS is on; logins need it); \
             firewall the port or set `bind = \"127.0.0.1\"` if only this machine needs it"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn url_encodes_special_characters() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        assert_eq!(url(&s, None), "postgresql://app@127.0.0.1:5432/app");
        assert_eq!(
            url(&s, Some("p@ss w'o\"rd\\")),
            "postgresql://app:p%40ss%20w%27o%22rd%5C@127.0.0.1:5432/app"
        );
    }
}
