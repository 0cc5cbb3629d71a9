//! One HTTP/1 connection to another server sharing the store, by its URL.
use axum::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Connects to the server at `url` (within `within`); the sender and the Host header to send.
pub async fn connect(url: &str, within: Duration) -> Result<(SendRequest<Body>, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let host = uri.host().ok_or("no host")?.trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(within, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let authority = uri.authority().map_or(host, |a| a.as_str()).to_string();
    Ok((sender, authority))
}
