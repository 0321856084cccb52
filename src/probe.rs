//! A PostgreSQL "ping" over TCP from the host, like `pg_isready`, with no client library.
//!
//! A TCP connect alone proves little: the engine's port proxy accepts connections
//! even when nothing listens behind it. So the probe sends a protocol 3.0 startup
//! message and reads the first reply byte: an authentication request or an error
//! other than "the database system is starting up" means the server is accepting
//! connections. The probe disconnects before authenticating, which the server
//! does not log as a failure.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ping {
    /// The server answered and accepts connections.
    Ready,
    /// The server answered but is starting up, shutting down or in recovery.
    NotReady(String),
    /// Nothing useful answered.
    NoResponse(String),
}

fn startup_message() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (k, v) in [
        ("user", "pgbox_probe"),
        ("database", "postgres"),
        ("application_name", "pgbox-probe"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// The SQLSTATE (`C` field) of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> Option<String> {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
}

pub async fn ping(host: &str, port: u16, timeout: Duration) -> Ping {
    match tokio::time::timeout(timeout, ping_inner(host, port)).await {
        Ok(p) => p,
        Err(_) => Ping::NoResponse(format!("no answer within {timeout:?}")),
    }
}

async fn ping_inner(host: &str, port: u16) -> Ping {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut s = match TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return Ping::NoResponse(e.to_string()),
    };
    if let Err(e) = s.write_all(&startup_message()).await {
        return Ping::NoResponse(e.to_string());
    }
    let mut head = [0u8; 5];
    if let Err(e) = s.read_exact(&mut head).await {
        return Ping::NoResponse(format!("connection closed without a reply ({e})"));
    }
    match head[0] {
        b'R' => Ping::Ready,
        b'E' => {
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4).min(8192)];
            let _ = s.read_exact(&mut body).await;
            match sqlstate(&body).as_deref() {
                // cannot_connect_now: starting up, shutting down, recovery
                Some("57P03") => {
                    Ping::NotReady("the database system is starting up or shutting down".into())
                }
                _ => Ping::Ready,
            }
        }
        other => Ping::NoResponse(format!("unexpected reply byte {other:#04x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn fake_server(reply: Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf).await;
            c.write_all(&reply).await.unwrap();
        });
        port
    }

    fn error_response(code: &str) -> Vec<u8> {
        let mut body = b"SFATAL\0C".to_vec();
        body.extend_from_slice(code.as_bytes());
        body.extend_from_slice(b"\0Mmsg\0\0");
        let mut m = vec![b'E'];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[tokio::test]
    async fn auth_request_is_ready() {
        let port = fake_server(vec![b'R', 0, 0, 0, 8, 0, 0, 0, 10]).await;
        assert_eq!(
            ping("127.0.0.1", port, Duration::from_secs(2)).await,
            Ping::Ready
        );
    }

    #[tokio::test]
    async fn starting_up_is_not_ready() {
        let port = fake_server(error_response("57P03")).await;
        assert!(matches!(
            ping("127.0.0.1", port, Duration::from_secs(2)).await,
            Ping::NotReady(_)
        ));
    }

    #[tokio::test]
    async fn silent_close_is_no_response() {
        let port = fake_server(vec![]).await;
        assert!(matches!(
            ping("127.0.0.1", port, Duration::from_secs(2)).await,
            Ping::NoResponse(_)
        ));
    }
}
