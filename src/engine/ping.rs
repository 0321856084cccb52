//! Who answers on an engine address, from ONE `GET /_ping`: its API version (for
//! negotiation), whether it is Podman, and its version, all read from the
//! response headers, as the Docker CLI negotiates.
//!
//! Why not `GET /version` (bollard's `negotiate_version`, then `version()`): Podman
//! builds that answer from `podman info`, which runs conmon and the OCI runtime to
//! ask their versions. It measured 0.37 to 0.55 s per call on an idle 2-core
//! machine (and over a second under load), against 0.6 ms for `_ping`; pgbox made
//! two such calls before every command, most of Podman's gap to Docker. bollard's
//! `ping()` returns only the body, so this is a minimal HTTP/1.1 request of our own.
//! When an engine's `_ping` lacks the headers, the caller falls back to `/version`.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Flavour;

/// What `_ping`'s headers say about the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub flavour: Flavour,
    /// The engine's own version (`20.10.24+dfsg1`, `4.3.1`), as `/version` gives it.
    pub version: String,
    /// The highest Docker API version it speaks (`Api-Version`).
    pub api: (usize, usize),
}

/// `GET /_ping` at `address` (`unix://`, `tcp://` or `http://`). `Ok(None)` when the
/// engine answered without the headers pgbox needs (then ask `/version`).
pub async fn identify(address: &str, timeout: Duration) -> Result<Option<Identity>, String> {
    let head = tokio::time::timeout(timeout, async {
        if let Some(path) = address.strip_prefix("unix://") {
            let s = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| e.to_string())?;
            request(s).await
        } else {
            let hostport = address
                .trim_start_matches("tcp://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let s = tokio::net::TcpStream::connect(hostport)
                .await
                .map_err(|e| e.to_string())?;
            request(s).await
        }
    })
    .await
    .map_err(|_| format!("no answer to `GET /_ping` within {timeout:?}"))??;
    Ok(parse(&head))
}

/// Send the request and read the response head (status line and headers).
async fn request<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> Result<String, String> {
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return Err("the answer to `GET /_ping` has no end of headers".into());
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The identity in a `_ping` response head; None unless it is a 200 with `Api-Version`
/// and a version (`Libpod-Api-Version`, else the `Server` header's `Docker/VERSION`).
fn parse(head: &str) -> Option<Identity> {
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    if status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let mut api = None;
    let mut libpod = None;
    let mut server = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "api-version" => api = Some(v.to_string()),
            "libpod-api-version" if !v.is_empty() => libpod = Some(v.to_string()),
            "server" => server = Some(v.to_string()),
            _ => {}
        }
    }
    let (major, minor) = api?.split_once('.').and_then(|(a, b)| {
        let a = a.parse().ok()?;
        let b = b.parse().ok()?;
        Some((a, b))
    })?;
    let server_version = || {
        let s = server.as_deref()?;
        let (name, rest) = s.split_once('/')?;
        let v = rest.split_whitespace().next()?;
        Some((name.to_ascii_lowercase(), v.to_string()))
    };
    let (flavour, version) = match (libpod, server_version()) {
        (Some(v), _) => (Flavour::Podman, v),
        (None, Some((name, v))) if name == "libpod" => (Flavour::Podman, v),
        (None, Some((name, v))) if name == "docker" => (Flavour::Docker, v),
        _ => return None,
    };
    Some(Identity {
        flavour,
        version,
        api: (major, minor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_podman_are_told_apart_by_their_headers() {
        let docker = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse(docker),
            Some(Identity {
                flavour: Flavour::Docker,
                version: "20.10.24+dfsg1".into(),
                api: (1, 41)
            })
        );
        let podman = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nBuildkit-Version: \r\nLibpod-Api-Version: 4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\n\r\n";
        assert_eq!(
            parse(podman),
            Some(Identity {
                flavour: Flavour::Podman,
                version: "4.3.1".into(),
                api: (1, 41)
            })
        );
    }

    #[test]
    fn without_the_headers_the_caller_asks_version() {
        // No Api-Version (an old engine or a proxy), an error, an unknown server.
        assert_eq!(parse("HTTP/1.1 200 OK\r\nServer: Docker/1.0\r\n\r\n"), None);
        assert_eq!(
            parse("HTTP/1.1 500 Internal Server Error\r\nApi-Version: 1.41\r\nServer: Docker/20.10 (linux)\r\n\r\n"),
            None
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nServer: nginx\r\n\r\n"),
            None
        );
    }
}
