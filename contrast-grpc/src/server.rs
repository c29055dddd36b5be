//! The server side: accept TCP connections, run the aTLS handshake on each (within
//! [`Limits::handshake_timeout`]), and serve a tonic service over HTTP/2 on it. The handshake's
//! outcome reaches the handlers as a [`Connection`] in every request's extensions
//! ([`connection`]).
//!
//! Every accepted connection gets its own task. Its rustls config is built per connection (the
//! aTLS nonce is per connection) by the [`Acceptor`], and it lives at most
//! [`Limits::connection_timeout`], so a stalled client costs a task and a socket for a bounded
//! time and never blocks others. A listener holds at most [`Limits::max_connections`] open
//! connections ([`accept_loop`]): beyond it a new connection is closed as soon as it is
//! accepted. A connection whose client's attestation was refused (deferred rejection) is
//! closed after its first answer, which carries the refusal.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contrast_attest::{AtlsError, PeerSlot, VerifiedPeer};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
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

/// Open connections per listener by default ([`Limits::max_connections`]): an idle attested
/// connection holds ~30 KiB (800 held 23 MB), and at most the HTTP/2 receive window (256 KiB)
/// of received bytes the server has not read yet.
pub const MAX_CONNECTIONS: u32 = 256;

/// The server's receive windows: what a client may send before the server reads it. A
/// `SetManifest` (at most 4 MiB) streams through them at a window per round trip (2.5 MB/s at
/// 100 ms); small, so that open connections cannot make the server hold much unread data
/// ([`MAX_CONNECTIONS`] × 256 KiB at most). The client's windows, not these, govern a large
/// `GetManifests` answer.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 256 * 1024;

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
    /// The TLS handshake must finish within this (and a connection whose client's
    /// attestation was refused must ask for the refusal within it).
    pub handshake_timeout: Duration,
    /// A connection is closed after this, whatever it is doing.
    pub connection_timeout: Duration,
    /// Open connections of the listener; a connection beyond them is closed as soon as it is
    /// accepted (at least 1).
    pub max_connections: u32,
}

impl Default for Limits {
    /// [`HANDSHAKE_TIMEOUT`], two minutes per connection, [`MAX_CONNECTIONS`].
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            connection_timeout: Duration::from_secs(120),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// An open connection's place under its listener's [`Limits::max_connections`], from
/// [`accept_loop`]; the place frees when the connection's task drops it.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
}

impl ConnectionSlot {
    /// Drives `connection` (a hyper server connection) until it ends or `timeout` has passed
    /// (then it is dropped: closed). When the listener shuts down, or `close` is notified, the
    /// connection is shut down gracefully: HTTP/2 sends GOAWAY, and the answers under way are
    /// still delivered before it closes.
    pub async fn serve<C>(
        mut self,
        name: &'static str,
        remote: SocketAddr,
        timeout: Duration,
        connection: C,
        close: Option<Arc<Notify>>,
    ) where
        C: GracefulConnection,
        C::Error: std::fmt::Display,
    {
        let mut connection = std::pin::pin!(connection);
        let deadline = tokio::time::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(listener = name, %remote, %error, "connection ended with an error");
                    }
                    return;
                }
                () = &mut deadline => {
                    tracing::info!(listener = name, %remote, ?timeout, "connection closed after its timeout");
                    return;
                }
                _ = self.shutdown.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = notified(close.as_deref()), if !closing => {
                    tracing::debug!(listener = name, %remote, "closing the connection after its refusal");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Waits for `close`, or forever without one.
async fn notified(close: Option<&Notify>) {
    match close {
        Some(close) => close.notified().await,
        None => std::future::pending().await,
    }
}

/// Accepts connections on `listener` (with `TCP_NODELAY`) and hands each to `on_connection`
/// with its [`ConnectionSlot`] until `shutdown` turns true, then gives the open ones
/// [`SHUTDOWN_GRACE`] to finish (their slots signal them to shut down gracefully).
///
/// At `max_connections` open connections, a new one is closed as soon as it is accepted and
/// `on_refused` is called (count it): the client learns at once (the connection ends before
/// any handshake) instead of waiting in the kernel's backlog, and a closed connection frees a
/// slot. The first refusal after room was available is logged as a warning.
pub async fn accept_loop(
    listener: TcpListener,
    name: &'static str,
    max_connections: u32,
    mut shutdown: watch::Receiver<bool>,
    mut on_refused: impl FnMut(SocketAddr),
    mut on_connection: impl FnMut(TcpStream, SocketAddr, ConnectionSlot),
) {
    let max_connections = max_connections.max(1);
    let slots = Arc::new(Semaphore::new(
        usize::try_from(max_connections).unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let mut full = false;
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
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(tcp);
            if !full {
                tracing::warn!(
                    listener = name,
                    max_connections,
                    "at the connection cap: closing new connections until one ends"
                );
                full = true;
            }
            tracing::debug!(listener = name, %remote, "connection refused: at the connection cap");
            on_refused(remote);
            continue;
        };
        full = false;
        // Without TCP_NODELAY every handshake flight waits out a delayed ACK (40 ms on Linux).
        let _ = tcp.set_nodelay(true);
        on_connection(
            tcp,
            remote,
            ConnectionSlot {
                _permit: permit,
                shutdown: shutdown.clone(),
            },
        );
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(max_connections))
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "connections still open after {SHUTDOWN_GRACE:?}; closing them"
        );
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

    /// Records a connection closed at the connection cap (metrics). The default does nothing.
    fn connection_refused(&self) {}
}

/// Accepts aTLS connections on `listener` and serves `service` (a tonic server, e.g.
/// `UserApiServer`) on each until `shutdown` turns true, then drains them for at most
/// [`SHUTDOWN_GRACE`]; at most [`Limits::max_connections`] at once ([`accept_loop`]). A
/// connection whose client's attestation was refused ([`Connection::rejection`]) is closed
/// after its first answer, and lives at most [`Limits::handshake_timeout`].
pub async fn serve<A, S>(
    listener: TcpListener,
    acceptor: Arc<A>,
    service: S,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) where
    A: Acceptor,
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let name = acceptor.name();
    let refusals = Arc::clone(&acceptor);
    accept_loop(
        listener,
        name,
        limits.max_connections,
        shutdown,
        move |_| refusals.connection_refused(),
        |tcp, remote, slot| {
            let Some((config, peer_slot, context)) = acceptor.configure() else {
                tracing::debug!(listener = name, %remote, "connection refused: no state to serve");
                return;
            };
            tokio::spawn(serve_connection(
                Arc::clone(&acceptor),
                service.clone(),
                limits,
                (tcp, remote),
                (config, peer_slot, context),
                slot,
            ));
        },
    )
    .await;
}

/// The handshake, then HTTP/2 on one accepted connection.
async fn serve_connection<A, S>(
    acceptor: Arc<A>,
    service: S,
    limits: Limits,
    (tcp, remote): (TcpStream, SocketAddr),
    (config, peer_slot, context): (rustls::ServerConfig, Arc<PeerSlot>, A::Context),
    slot: ConnectionSlot,
) where
    A: Acceptor,
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let name = acceptor.name();
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
            let reason = peer_slot
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
        peer: peer_slot.peer(),
        rejection: peer_slot.error(),
        context,
        remote,
    });
    // A refused client gets its refusal on its first request; nothing else is served to it, so
    // the connection closes after that answer instead of being held for its lifetime.
    let (close, timeout) = if connection.rejection.is_some() {
        (
            Some(Arc::new(Notify::new())),
            limits.connection_timeout.min(limits.handshake_timeout),
        )
    } else {
        (None, limits.connection_timeout)
    };
    let close_after_answer = close.clone();
    let requests = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(Arc::clone(&connection));
        let mut service = service.clone();
        let close = close_after_answer.clone();
        async move {
            let response = service.call(request).await;
            if let Some(close) = close {
                close.notify_one();
            }
            response
        }
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
    slot.serve(name, remote, timeout, http, close).await;
}
