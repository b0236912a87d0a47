//! A minimal HTTP/1.1 responder for Prometheus' `GET /metrics` (there is
//! no HTTP library in the stack, and this is all a scraper needs).
//!
//! Requests are bounded (8 KiB, 5 s to send the head, 64 served at once);
//! every response closes the connection.

use anyhow::Context;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served concurrently; more connections are closed at once.
const MAX_CONCURRENT: usize = 64;
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds an IPv6-only TCP listener (`IPV6_V6ONLY`, like the QUIC socket).
pub(crate) fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = stoq::endpoint::require_ipv6(addr)?;
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(128)?;
        Ok(socket.into())
    };
    let std_listener = bind().with_context(|| {
        format!(
            "binding the metrics listener on {addr} (choose another with --metrics, or turn it off with --no-metrics)"
        )
    })?;
    Ok(TcpListener::from_std(std_listener)?)
}

/// Serves `/metrics` from `registry` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics: too many concurrent requests, closing");
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &registry).await {
                tracing::debug!(%peer, error = %e, "metrics request failed");
            }
            drop(permit);
        });
    }
}

/// What the request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    NotFound,
    Bad,
    TooLarge,
}

/// Reads until the end of the request head (`\r\n\r\n`), at most
/// [`MAX_REQUEST`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(route(&buf));
        }
        if buf.len() >= MAX_REQUEST {
            return Ok(Request::TooLarge);
        }
        let want = chunk.len().min(MAX_REQUEST - buf.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            // The peer closed before finishing; answer what we can.
            return Ok(if buf.is_empty() { Request::Bad } else { route(&buf) });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Routes on the request line.
fn route(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    if method == "GET" && path == "/metrics" {
        Request::Metrics
    } else {
        Request::NotFound
    }
}

async fn handle(mut stream: TcpStream, registry: &Registry) -> anyhow::Result<()> {
    let request = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => {
            respond(&mut stream, "408 Request Timeout", "text/plain", b"request timeout\n").await?;
            return Ok(());
        }
    };
    match request {
        Request::Metrics => {
            let mut body = String::new();
            prometheus_client::encoding::text::encode(&mut body, registry)?;
            respond(&mut stream, "200 OK", CONTENT_TYPE, body.as_bytes()).await
        }
        Request::NotFound => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found: try GET /metrics\n",
            )
            .await
        }
        Request::Bad => respond(&mut stream, "400 Bad Request", "text/plain", b"bad request\n").await,
        Request::TooLarge => {
            respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
            )
            .await
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> anyhow::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(READ_TIMEOUT, write)
        .await
        .context("metrics client too slow to read")??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Request::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Request::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Request::Bad);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Request::Bad);
    }

    #[tokio::test]
    async fn serves_metrics_and_bounds_requests() {
        let listener = bind("[::1]:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut registry = Registry::default();
        stoq::endpoint::Metrics::default().register(&mut registry);
        let server = tokio::spawn(serve(listener, Arc::new(registry)));
        let get = |req: Vec<u8>| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&req).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\n\r\n".to_vec()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains(CONTENT_TYPE) && ok.contains("stoq_connections_established"),
            "{ok}"
        );
        assert!(get(b"GET /x HTTP/1.1\r\n\r\n".to_vec())
            .await
            .starts_with("HTTP/1.1 404"));
        // Exactly the bound, without the end of the head: the server reads
        // it all (no unread data, so it closes with FIN, not RST).
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST, b'a');
        assert!(get(huge).await.starts_with("HTTP/1.1 431"));
        assert!(bind("127.0.0.1:0".parse().unwrap()).is_err());
        server.abort();
    }
}
