//! The server side: accept TCP connections, run the aTLS handshake on each (within
//! [`Limits::handshake_timeout`]), and serve a tonic service over HTTP/2 on it. The handshake's
//! outcome reaches the handlers as a [`Connection`] in every request's extensions
//! ([`connection`]).
//!
//! Every accepted connection gets its own task. Its rustls config is built per connection (the
//! aTLS nonce is per connection) by the [`Acceptor`], and it lives at most
//! [`Limits::connection_timeout`], so a stalled client costs a task and a socket for a bounded
//! time and never blocks others.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contrast_attest::{AtlsError, PeerSlot, VerifiedPeer};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tonic::body::Body;
use tonic::codegen::Service;

/// Upstream's server-side aTLS handshake timeout (`ATLSServerHandshakeTimeout`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(25);

/// How long a graceful shutdown waits for open connections (upstream: 20 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// HTTP/2 keep-alive pings (upstream's server keepalive `Time`).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Streams (calls) one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 64;

/// Flow-control windows: a whole manifest history fits the connection window, so a large
/// `GetManifests` or `SetManifest` is not throttled by WINDOW_UPDATE round trips.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// h2 writes each frame separately and flushes at the end of a poll; tokio-rustls turns every
/// write into a TLS record and a `writev`. Buffered, the frames written in one poll leave in
/// one record and one system call (8% fewer `writev` per attestation under load).
pub(crate) const WRITE_BUFFER: usize = 16 * 1024;

/// The server's side of a connection: flushes are held back until the client has sent
/// something, so h2's SETTINGS leave together with the ACK of the client's SETTINGS in one TLS
/// record instead of two. A client sends its preface first and never waits for ours (RFC 9113
/// §3.4), so holding ours back until its preface arrived delays nothing.
struct FlushAfterFirstRead<T> {
    inner: T,
    read: bool,
}

impl<T> FlushAfterFirstRead<T> {
    fn new(inner: T) -> Self {
        Self { inner, read: false }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FlushAfterFirstRead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read = true;
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FlushAfterFirstRead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.read {
            Pin::new(&mut self.inner).poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection is closed after this, whatever it is doing.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    /// [`HANDSHAKE_TIMEOUT`] and two minutes per connection.
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            connection_timeout: Duration::from_secs(120),
        }
    }
}

/// What one aTLS connection learned in its handshake; every request on the connection carries
/// it in its extensions (as `Arc<Connection<C>>`, see [`connection`]).
#[derive(Debug)]
pub struct Connection<C> {
    /// The client's certificate, verified (and appraised, with a client validator). On a
    /// listener without a client validator: the client's key, if it sent a certificate.
    pub peer: Option<VerifiedPeer>,
    /// Why the client's attestation was refused (with deferred rejection).
    pub rejection: Option<Arc<AtlsError>>,
    /// What the [`Acceptor`] captured when the connection was configured (e.g. the state).
    pub context: C,
    /// The client's address.
    pub remote: SocketAddr,
}

/// The [`Connection`] a request arrived on, from its extensions (`None` for a request that did
/// not come through [`serve`], e.g. in a unit test calling a handler directly).
#[must_use]
pub fn connection<C: Send + Sync + 'static, T>(
    request: &tonic::Request<T>,
) -> Option<&Arc<Connection<C>>> {
    request.extensions().get::<Arc<Connection<C>>>()
}

/// Configures each connection of a listener.
pub trait Acceptor: Send + Sync + 'static {
    /// Captured per connection (e.g. the state the mesh API appraises against).
    type Context: Send + Sync + 'static;

    /// The listener's name in logs.
    fn name(&self) -> &'static str;

    /// The rustls config for one connection (`contrast_attest::AtlsServer::config`), the slot
    /// its verifier fills and the context; `None` refuses the connection (closed before the
    /// handshake).
    fn configure(&self) -> Option<(rustls::ServerConfig, Arc<PeerSlot>, Self::Context)>;

    /// Records a finished handshake (metrics). The default does nothing.
    fn handshake_done(&self, elapsed: Duration, ok: bool) {
        let _ = (elapsed, ok);
    }
}

/// Accepts aTLS connections on `listener` and serves `service` (a tonic server, e.g.
/// `UserApiServer`) on each until `shutdown` turns true, then drains them for at most
/// [`SHUTDOWN_GRACE`]. Accepted sockets get `TCP_NODELAY`.
pub async fn serve<A, S>(
    listener: TcpListener,
    acceptor: Arc<A>,
    service: S,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    A: Acceptor,
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let name = acceptor.name();
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(listener = name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY every handshake flight waits out a delayed ACK (40 ms on Linux).
        let _ = tcp.set_nodelay(true);
        let Some((config, slot, context)) = acceptor.configure() else {
            tracing::debug!(listener = name, %remote, "connection refused: no state to serve");
            continue;
        };
        let acceptor = Arc::clone(&acceptor);
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let started = Instant::now();
            let tls = match tokio::time::timeout(
                limits.handshake_timeout,
                TlsAcceptor::from(Arc::new(config)).accept(tcp),
            )
            .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    acceptor.handshake_done(started.elapsed(), false);
                    let reason = slot
                        .error()
                        .map_or_else(|| error.to_string(), |e| e.to_string());
                    tracing::info!(listener = name, %remote, reason, "handshake failed");
                    return;
                }
                Err(_) => {
                    acceptor.handshake_done(started.elapsed(), false);
                    tracing::info!(listener = name, %remote, timeout = ?limits.handshake_timeout, "handshake timed out");
                    return;
                }
            };
            acceptor.handshake_done(started.elapsed(), true);
            let connection = Arc::new(Connection {
                peer: slot.peer(),
                rejection: slot.error(),
                context,
                remote,
            });
            let requests =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(Arc::clone(&connection));
                    let mut service = service.clone();
                    service.call(request)
                });
            let http = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .serve_connection(
                    TokioIo::new(FlushAfterFirstRead::new(BufWriter::with_capacity(
                        WRITE_BUFFER,
                        tls,
                    ))),
                    requests,
                );
            match tokio::time::timeout(limits.connection_timeout, watcher.watch(http)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(listener = name, %remote, %error, "connection ended with an error");
                }
                Err(_) => {
                    tracing::info!(listener = name, %remote, "connection closed after the connection timeout");
                }
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "connections still open after {SHUTDOWN_GRACE:?}; closing them"
        );
    }
}
