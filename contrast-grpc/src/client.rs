//! The client side: one TCP connection, its aTLS handshake (the server is appraised here) and
//! HTTP/2 on it, as a tonic transport ([`AtlsChannel`]) for the generated clients
//! (`UserApiClient::with_origin(channel, channel.origin())`). The channel never reconnects:
//! every call made through it is answered by the peer appraised in its handshake
//! ([`Connected::peer`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use contrast_attest::atls::{ALPN_H2, AtlsClient, atls_error_from_io};
use contrast_attest::{AtlsError, PeerSlot, VerifiedPeer};
use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand_core::OsRng;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tonic::body::Body;
use tonic::codegen::Service;

/// Flow-control windows of the client (see the server's).
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// Why [`connect`] failed: at which stage, against which address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host name did not resolve to an address (or the address is not `host:port`). Not
    /// transient: retrying does not help until the name or the DNS changes.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address, `host:port`.
        addr: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address, `host:port`.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A stage did not finish in time.
    #[error("{addr} did not complete the {stage} within {after:?}")]
    Timeout {
        /// The address, `host:port`.
        addr: String,
        /// `"connect"` or `"handshake"`.
        stage: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// Our validator refused the server's attestation.
    #[error("{addr} failed attestation: {source}")]
    Attestation {
        /// The address, `host:port`.
        addr: String,
        /// The check that failed.
        #[source]
        source: Arc<AtlsError>,
    },
    /// The server answered the TLS client hello with something that is not TLS: a plain HTTP
    /// server, or another protocol (e.g. a Coordinator's evidence or ops port). Not transient.
    #[error("{addr} does not speak TLS: {reason}")]
    NotTls {
        /// The address, `host:port`.
        addr: String,
        /// What the TLS library saw.
        reason: String,
    },
    /// The TLS or HTTP/2 handshake failed for another reason (refused by the server, no
    /// common application protocol, connection closed).
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The address, `host:port`.
        addr: String,
        /// What failed.
        reason: String,
    },
}

/// An attested connection: the tonic transport and the server it attested.
#[derive(Debug)]
pub struct Connected {
    /// The transport for the generated clients.
    pub channel: AtlsChannel,
    /// The server's certificate key and, with a validator, its appraisal.
    pub peer: VerifiedPeer,
}

/// Opens one attested gRPC connection to `addr` (`host:port`): TCP with `TCP_NODELAY` (within
/// `timeout`), then the aTLS handshake with a fresh config from `atls` offering ALPN
/// `[atls:v1:nonce:<hex>, h2]`, which must select `h2`, then the HTTP/2 handshake (together
/// within `timeout` again).
///
/// # Errors
/// [`ConnectError`] naming the stage that failed.
pub async fn connect(
    addr: &str,
    atls: &AtlsClient,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    let connect_error = |source| ConnectError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let timed_out = |stage| ConnectError::Timeout {
        addr: addr.to_owned(),
        stage,
        after: timeout,
    };
    let handshake_failed = |reason: String| ConnectError::Handshake {
        addr: addr.to_owned(),
        reason,
    };
    let resolved: Vec<std::net::SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host(addr))
            .await
            .map_err(|_| timed_out("connect"))?
            .map_err(|source| ConnectError::Resolve {
                addr: addr.to_owned(),
                source,
            })?
            .collect();
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(resolved.as_slice()))
        .await
        .map_err(|_| timed_out("connect"))?
        .map_err(connect_error)?;
    tcp.set_nodelay(true).map_err(connect_error)?;
    let (config, slot) = atls
        .config(&mut OsRng)
        .map_err(|e| handshake_failed(format!("cannot build the tls configuration: {e}")))?;
    let connector = TlsConnector::from(Arc::new(config));
    let tls_error = TlsErrorSlot::default();
    let handshake = async {
        let tls = connector
            .connect(server_name(addr), tcp)
            .await
            .map_err(|e| tls_handshake_error(addr, &e, &slot))?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if alpn.as_deref() != Some(ALPN_H2) {
            return Err(handshake_failed(format!(
                "the server selected application protocol {:?}, expected h2",
                alpn.map(|p| String::from_utf8_lossy(&p).into_owned())
            )));
        }
        // One TLS record and system call per h2 flush, not per frame (see the server's).
        let io = TokioIo::new(RecordingIo {
            inner: BufWriter::with_capacity(crate::server::WRITE_BUFFER, tls),
            tls_error: tls_error.clone(),
        });
        http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Body>(io)
            .await
            .map_err(|e| handshake_failed(tls_error.get().unwrap_or_else(|| e.to_string())))
    };
    let (sender, connection) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| timed_out("handshake"))??;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "coordinator connection closed with an error");
        }
    });
    let Some(peer) = slot.peer() else {
        driver.abort();
        return Err(handshake_failed(
            "the handshake finished without verifying the server's certificate".into(),
        ));
    };
    let origin = Uri::builder()
        .scheme("https")
        .authority(authority(addr))
        .path_and_query("/")
        .build()
        .unwrap_or_else(|_| Uri::from_static("https://127.0.0.1/"));
    Ok(Connected {
        channel: AtlsChannel {
            sender,
            origin,
            tls_error,
            _driver: Arc::new(Driver(driver)),
        },
        peer,
    })
}

fn tls_handshake_error(addr: &str, error: &std::io::Error, slot: &PeerSlot) -> ConnectError {
    let addr = addr.to_owned();
    match (atls_error_from_io(error), slot.error()) {
        // Our verifier refused the server; the slot holds the same error, shareable.
        (Some(_), Some(source)) => ConnectError::Attestation { addr, source },
        (Some(inner), None) => ConnectError::Handshake {
            addr,
            reason: inner.to_string(),
        },
        // Our own side failed to produce its attested certificate (mutual aTLS).
        (None, Some(ours)) => ConnectError::Handshake {
            addr,
            reason: format!("this side could not present its attestation: {ours}"),
        },
        (None, None) if is_not_tls(error) => ConnectError::NotTls {
            addr,
            reason: error.to_string(),
        },
        (None, None) => ConnectError::Handshake {
            addr,
            reason: error.to_string(),
        },
    }
}

/// Whether the handshake failed because the bytes the server sent are not TLS records.
fn is_not_tls(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidMessage(_)))
}

/// Aborts the connection task when the last clone of the channel is dropped.
#[derive(Debug)]
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One attested HTTP/2 connection as a tonic transport. Clones share the connection; calls are
/// multiplexed on it; dropping the last clone closes it.
#[derive(Clone, Debug)]
pub struct AtlsChannel {
    sender: http2::SendRequest<Body>,
    origin: Uri,
    tls_error: TlsErrorSlot,
    /// Held, never read: the connection's task ends with the last clone.
    _driver: Arc<Driver>,
}

impl AtlsChannel {
    /// The origin (`https://host:port/`) to give the generated clients' `with_origin`.
    #[must_use]
    pub fn origin(&self) -> Uri {
        self.origin.clone()
    }

    /// The first TLS error seen on the connection after the handshake, e.g. the server's alert
    /// refusing our certificate, which TLS 1.3 delivers only with the server's first answer.
    #[must_use]
    pub fn tls_error(&self) -> Option<String> {
        self.tls_error.get()
    }
}

/// A transport failure of an [`AtlsChannel`] (the connection broke; not an answer of the
/// server). tonic reports it as a status whose source is this error.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct TransportError {
    reason: String,
}

impl TransportError {
    fn new(error: &hyper::Error, tls_error: &TlsErrorSlot) -> Self {
        let reason = match tls_error.get() {
            Some(tls) => format!("tls: {tls}"),
            None => error_chain(error),
        };
        Self { reason }
    }
}

impl Service<http::Request<Body>> for AtlsChannel {
    type Response = http::Response<Incoming>;
    type Error = TransportError;
    type Future = Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender
            .poll_ready(cx)
            .map_err(|e| TransportError::new(&e, &self.tls_error))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = self.sender.send_request(request);
        let tls_error = self.tls_error.clone();
        Box::pin(async move {
            response
                .await
                .map_err(|e| TransportError::new(&e, &tls_error))
        })
    }
}

/// The first TLS error seen on a connection's stream.
#[derive(Clone, Debug, Default)]
struct TlsErrorSlot(Arc<Mutex<Option<String>>>);

impl TlsErrorSlot {
    fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, error: &std::io::Error) {
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(tls) = tls {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(tls.to_string());
            }
        }
    }
}

/// The TLS stream, recording TLS errors (hyper's HTTP/2 errors do not keep the I/O error).
struct RecordingIo<T> {
    inner: T,
    tls_error: TlsErrorSlot,
}

impl<T> RecordingIo<T> {
    fn observe<R>(&self, result: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        if let Poll::Ready(Err(error)) = &result {
            self.tls_error.record(error);
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for RecordingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.observe(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for RecordingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.observe(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.observe(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.observe(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.observe(result)
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        let part = current.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = current.source();
    }
    text
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(host, _)| host)
    } else {
        addr.rsplit_once(':').map_or(addr, |(host, _)| host)
    }
}

/// The HTTP/2 `:authority`: `addr` itself when it parses as one, else loopback.
fn authority(addr: &str) -> http::uri::Authority {
    addr.parse()
        .unwrap_or_else(|_| http::uri::Authority::from_static("127.0.0.1"))
}

/// The host as a TLS server name (the gRPC authority, as upstream); the aTLS verifier ignores
/// it, so an unusable host falls back to `127.0.0.1`.
fn server_name(addr: &str) -> ServerName<'static> {
    ServerName::try_from(host(addr).to_owned())
        .unwrap_or_else(|_| ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_part() {
        let name = |s: &str| ServerName::try_from(s.to_owned()).ok();
        assert_eq!(
            Some(server_name("coordinator.default:7777")),
            name("coordinator.default")
        );
        assert_eq!(Some(server_name("[::1]:1313")), name("::1"));
        assert_eq!(Some(server_name("bad host!:1")), name("127.0.0.1"));
    }

    #[test]
    fn authority_falls_back_to_loopback() {
        assert_eq!(authority("c:1313").as_str(), "c:1313");
        assert_eq!(authority("bad host!:1").as_str(), "127.0.0.1");
    }
}
