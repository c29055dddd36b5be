//! Loopback ports and a raw HTTP/1.1 client for the Coordinator's plain-HTTP ports (ops,
//! evidence), and for sending bytes no well-behaved client would.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Ports handed out are taken below Linux's ephemeral range (32768–60999 by default): a port
/// the kernel picked for `:0` is also what it picks for the next outgoing connection, and a
/// test's own clients then took a Coordinator's port before it bound it ("Address already in
/// use" on a loaded machine). Each process walks the range from its own offset, so ports are
/// never handed out twice in one process.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A free loopback port (bound and released: good enough for tests).
pub fn try_free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let offset = (start + step) % span;
        let port = PORT_RANGE.start + u16::try_from(offset).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// [`try_free_port`], panicking when the machine has no port to give.
#[allow(clippy::expect_used)] // Test support: no port is a failed test.
pub fn free_port() -> u16 {
    try_free_port().expect("binding an ephemeral loopback port")
}

/// `GET path` over HTTP/1.1 on a plain port: (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `POST path` with a content type and body: (status, body).
pub fn http_post(
    addr: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_http(addr, &request)
}

/// Sends raw bytes and parses the status line and body of the answer (read until the server
/// closes, at most 10 s).
pub fn raw_http(addr: &str, request: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
