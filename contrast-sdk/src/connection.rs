//! One attested HTTP connection to the Coordinator (HTTP/1.1 or HTTP/2, as the aTLS handshake
//! negotiated), and the client that opens them.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use contrast_core::api::{
    ErrorCode, ErrorResponse, GetManifestsResponse, MeshCertRequest, MeshCertResponse,
    MeshRecoverRequest, MeshRecoverResponse, RecoverRequest, RecoverResponse, SetManifestRequest,
    SetManifestResponse, path,
};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand_core::OsRng;
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use super::ClientError;
use contrast_attest::atls::{ALPN_HTTP11, AtlsClient, PeerSlot, VerifiedPeer, atls_error_from_io};

/// Largest response body accepted by default (a `GetManifests` response carries the whole
/// history and every policy, so it can be large).
pub const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a non-JSON error body is kept as the message.
const ERROR_BODY_EXCERPT: usize = 512;

/// A response together with the Coordinator that sent it, as our validator appraised it.
#[derive(Clone, Debug)]
pub struct Attested<T> {
    /// The response.
    pub value: T,
    /// The server's certificate key and, with a validator, its appraisal.
    pub peer: VerifiedPeer,
}

/// A client of one Coordinator address. Cheap to clone; every connection gets a fresh aTLS
/// config (nonce) from the [`AtlsClient`].
#[derive(Clone, Debug)]
pub struct CoordinatorClient {
    addr: String,
    atls: AtlsClient,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_response_body: usize,
}

impl CoordinatorClient {
    /// A client for `addr` (`host:port`, e.g. `coordinator:1313` or `[::1]:7777`) using `atls`
    /// (its validator appraises the Coordinator; its issuer and key answer a mutual-aTLS
    /// request). Timeouts: 10 s to connect and 10 s for the handshake, 30 s per request.
    pub fn new(addr: impl Into<String>, atls: AtlsClient) -> Self {
        Self {
            addr: addr.into(),
            atls,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_body: MAX_RESPONSE_BODY,
        }
    }

    /// Sets the timeouts: `connect` bounds the TCP connect and, separately, the TLS and
    /// HTTP handshake; `request` bounds each request including its response body.
    #[must_use]
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Sets the largest accepted response body (default [`MAX_RESPONSE_BODY`]).
    #[must_use]
    pub fn with_max_response_body(mut self, limit: usize) -> Self {
        self.max_response_body = limit;
        self
    }

    /// The address this client connects to.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens one attested connection: TCP (with `TCP_NODELAY`), the aTLS handshake (the
    /// server is appraised here), then HTTP/1.1 or HTTP/2, whichever the server chose from our
    /// ALPN offer.
    ///
    /// # Errors
    /// [`ClientError::Connect`], [`ClientError::Timeout`] (`"connect"` or `"handshake"`),
    /// [`ClientError::Attestation`], [`ClientError::Handshake`], [`ClientError::Protocol`].
    pub async fn connect(&self) -> Result<Session, ClientError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| self.timeout("connect", self.connect_timeout))?
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        // Without it each handshake flight waits for the peer's delayed ACK.
        tcp.set_nodelay(true)
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let (config, slot) = self
            .atls
            .config(&mut OsRng)
            .map_err(|e| ClientError::Handshake {
                addr: self.addr.clone(),
                reason: format!("cannot build the tls configuration: {e}"),
            })?;
        let connector = TlsConnector::from(Arc::new(config));
        let tls_error = TlsErrorSlot::default();
        let handshake = async {
            let tls = connector
                .connect(server_name(&self.addr), tcp)
                .await
                .map_err(|e| self.handshake_error(&e, &slot))?;
            let http11 = tls.get_ref().1.alpn_protocol() == Some(ALPN_HTTP11);
            let io = TokioIo::new(RecordingIo {
                inner: tls,
                tls_error: tls_error.clone(),
            });
            let classify = |e: hyper::Error| classify_hyper_error(&self.addr, &e, &tls_error);
            if http11 {
                let (sender, connection) = http1::handshake(io).await.map_err(classify)?;
                Ok((
                    Sender::Http1(tokio::sync::Mutex::new(sender)),
                    drive(connection),
                ))
            } else {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(classify)?;
                Ok((Sender::Http2(sender), drive(connection)))
            }
        };
        let (sender, driver) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| self.timeout("handshake", self.connect_timeout))??;
        let Some(peer) = slot.peer() else {
            driver.abort();
            return Err(ClientError::Handshake {
                addr: self.addr.clone(),
                reason: "the handshake finished without verifying the server's certificate".into(),
            });
        };
        Ok(Session {
            addr: self.addr.clone(),
            sender,
            peer,
            request_timeout: self.request_timeout,
            max_response_body: self.max_response_body,
            tls_error,
            driver,
        })
    }

    /// `POST /v1/manifest` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::call`].
    pub async fn set_manifest(
        &self,
        request: &SetManifestRequest,
    ) -> Result<Attested<SetManifestResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.set_manifest(request).await?;
        Ok(session.attested(value))
    }

    /// `GET /v1/manifests` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::call`].
    pub async fn get_manifests(&self) -> Result<Attested<GetManifestsResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.get_manifests().await?;
        Ok(session.attested(value))
    }

    /// `POST /v1/recover` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::call`].
    pub async fn recover(
        &self,
        request: &RecoverRequest,
    ) -> Result<Attested<RecoverResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.recover(request).await?;
        Ok(session.attested(value))
    }

    /// `POST /v1/mesh/cert` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::call`].
    pub async fn mesh_cert(&self) -> Result<Attested<MeshCertResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.mesh_cert().await?;
        Ok(session.attested(value))
    }

    /// `POST /v1/mesh/recover` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::call`].
    pub async fn mesh_recover(&self) -> Result<Attested<MeshRecoverResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.mesh_recover().await?;
        Ok(session.attested(value))
    }

    fn timeout(&self, stage: &'static str, after: Duration) -> ClientError {
        ClientError::Timeout {
            addr: self.addr.clone(),
            stage,
            after,
        }
    }

    fn handshake_error(&self, error: &std::io::Error, slot: &PeerSlot) -> ClientError {
        let addr = self.addr.clone();
        match (atls_error_from_io(error), slot.error()) {
            // Our verifier refused the server; the slot holds the same error, shareable.
            (Some(_), Some(source)) => ClientError::Attestation { addr, source },
            (Some(inner), None) => ClientError::Handshake {
                addr,
                reason: inner.to_string(),
            },
            // Our own side failed to produce its attested certificate (mutual aTLS).
            (None, Some(ours)) => ClientError::Handshake {
                addr,
                reason: format!("this side could not present its attestation: {ours}"),
            },
            (None, None) => ClientError::Handshake {
                addr,
                reason: error.to_string(),
            },
        }
    }
}

/// A TLS failure surfacing through hyper (e.g. the server's alert refusing our certificate,
/// which TLS 1.3 delivers after the client's handshake has finished) is a handshake error;
/// anything else is an HTTP-level one. hyper's HTTP/2 errors do not keep the I/O error's
/// type, so the TLS error is taken from what [`RecordingIo`] saw on the stream.
fn classify_hyper_error(addr: &str, error: &hyper::Error, tls_error: &TlsErrorSlot) -> ClientError {
    if let Some(reason) = tls_error.get() {
        return ClientError::Handshake {
            addr: addr.to_owned(),
            reason,
        };
    }
    ClientError::Protocol {
        addr: addr.to_owned(),
        reason: error_chain(error),
    }
}

/// Runs a connection's I/O until it closes or the [`Session`] is dropped.
fn drive<C>(connection: C) -> JoinHandle<()>
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "coordinator connection closed with an error");
        }
    })
}

/// The request half of a session's connection.
#[derive(Debug)]
enum Sender {
    /// One request at a time; the lock orders concurrent calls.
    Http1(tokio::sync::Mutex<http1::SendRequest<Full<Bytes>>>),
    /// Multiplexed; each call sends on a clone.
    Http2(http2::SendRequest<Full<Bytes>>),
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

/// The TLS stream, recording TLS errors for [`classify_hyper_error`].
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

fn error_chain(error: &dyn StdError) -> String {
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

/// The host part of `host:port` (brackets of an IPv6 literal removed) as a TLS server name;
/// the aTLS verifier ignores it, so an unusable host falls back to `127.0.0.1`.
fn server_name(addr: &str) -> ServerName<'static> {
    let host = if let Some(rest) = addr.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(host, _)| host)
    } else {
        addr.rsplit_once(':').map_or(addr, |(host, _)| host)
    };
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])))
}

/// One attested HTTP connection: every call is answered by the peer appraised in its
/// handshake ([`Session::peer`]). Dropping the session closes the connection.
#[derive(Debug)]
pub struct Session {
    addr: String,
    sender: Sender,
    peer: VerifiedPeer,
    request_timeout: Duration,
    max_response_body: usize,
    tls_error: TlsErrorSlot,
    driver: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Session {
    /// The server as appraised in the handshake.
    #[must_use]
    pub fn peer(&self) -> &VerifiedPeer {
        &self.peer
    }

    /// Wraps a value with this session's peer.
    #[must_use]
    pub fn attested<T>(&self, value: T) -> Attested<T> {
        Attested {
            value,
            peer: self.peer.clone(),
        }
    }

    /// Sends `request` as JSON (`GET` and `HEAD` send no body) to `path` and decodes a 200
    /// answer as `Resp`.
    ///
    /// # Errors
    /// [`ClientError::Api`] for a non-200 answer, [`ClientError::Timeout`] (`"request"`),
    /// [`ClientError::Protocol`] (including a body over the limit), [`ClientError::Handshake`]
    /// (a TLS alert during the exchange), [`ClientError::Decode`].
    pub async fn call<Req, Resp>(
        &self,
        method: Method,
        path: &str,
        request: &Req,
    ) -> Result<Resp, ClientError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = if method == Method::GET || method == Method::HEAD {
            Vec::new()
        } else {
            serde_json::to_vec(request).map_err(|e| ClientError::Decode {
                what: short_type_name::<Req>(),
                reason: format!("cannot encode the request: {e}"),
            })?
        };
        let mut builder = Request::builder().method(method);
        builder = match self.sender {
            // HTTP/1.1 sends the URI as given: origin form, the authority in `Host`.
            Sender::Http1(_) => builder.uri(path).header(HOST, self.addr.as_str()),
            Sender::Http2(_) => builder.uri(format!("https://{}{path}", self.addr)),
        };
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.protocol(format!("cannot build the request for {path}: {e}")))?;
        let (status, body) = tokio::time::timeout(self.request_timeout, self.exchange(request))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.addr.clone(),
                stage: "request",
                after: self.request_timeout,
            })??;
        if status == StatusCode::OK {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
                what: short_type_name::<Resp>(),
                reason: e.to_string(),
            });
        }
        let error = serde_json::from_slice::<ErrorResponse>(&body).unwrap_or_else(|_| {
            let excerpt = body.get(..ERROR_BODY_EXCERPT).unwrap_or(&body);
            ErrorResponse {
                version: String::new(),
                status_code: status.as_u16(),
                code: ErrorCode::Other(format!("http_{}", status.as_u16())),
                error: String::from_utf8_lossy(excerpt).into_owned(),
            }
        });
        Err(ClientError::Api {
            addr: self.addr.clone(),
            path: path.to_owned(),
            status: status.as_u16(),
            error,
        })
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), ClientError> {
        let classify = |e: hyper::Error| classify_hyper_error(&self.addr, &e, &self.tls_error);
        let response = match &self.sender {
            Sender::Http1(sender) => {
                let mut sender = sender.lock().await;
                sender.ready().await.map_err(classify)?;
                sender.send_request(request).await.map_err(classify)?
            }
            Sender::Http2(sender) => {
                let mut sender = sender.clone();
                sender.ready().await.map_err(classify)?;
                sender.send_request(request).await.map_err(classify)?
            }
        };
        let status = response.status();
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(declared) = declared
            && declared > self.max_response_body as u64
        {
            return Err(self.too_large(declared));
        }
        let mut body = response.into_body();
        // Responses may carry secrets (workload secret, seed, mesh CA key): the copy we
        // assemble is wiped when dropped.
        let mut collected = Zeroizing::new(Vec::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| classify_hyper_error(&self.addr, &e, &self.tls_error))?;
            if let Ok(data) = frame.into_data() {
                if collected.len().saturating_add(data.len()) > self.max_response_body {
                    return Err(
                        self.too_large((collected.len() as u64).saturating_add(data.len() as u64))
                    );
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok((status, collected))
    }

    fn too_large(&self, size: u64) -> ClientError {
        self.protocol(format!(
            "the response body ({size} bytes or more) exceeds the limit of {} bytes",
            self.max_response_body
        ))
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// `POST /v1/manifest`.
    ///
    /// # Errors
    /// See [`Session::call`].
    pub async fn set_manifest(
        &self,
        request: &SetManifestRequest,
    ) -> Result<SetManifestResponse, ClientError> {
        self.call(Method::POST, path::SET_MANIFEST, request).await
    }

    /// `GET /v1/manifests`.
    ///
    /// # Errors
    /// See [`Session::call`].
    pub async fn get_manifests(&self) -> Result<GetManifestsResponse, ClientError> {
        self.call(Method::GET, path::GET_MANIFESTS, &()).await
    }

    /// `POST /v1/recover`.
    ///
    /// # Errors
    /// See [`Session::call`].
    pub async fn recover(&self, request: &RecoverRequest) -> Result<RecoverResponse, ClientError> {
        self.call(Method::POST, path::RECOVER, request).await
    }

    /// `POST /v1/mesh/cert`.
    ///
    /// # Errors
    /// See [`Session::call`].
    pub async fn mesh_cert(&self) -> Result<MeshCertResponse, ClientError> {
        self.call(Method::POST, path::MESH_CERT, &MeshCertRequest {})
            .await
    }

    /// `POST /v1/mesh/recover`.
    ///
    /// # Errors
    /// See [`Session::call`].
    pub async fn mesh_recover(&self) -> Result<MeshRecoverResponse, ClientError> {
        self.call(Method::POST, path::MESH_RECOVER, &MeshRecoverRequest {})
            .await
    }
}

fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_part() {
        assert_eq!(
            server_name("coordinator.default:7777"),
            ServerName::try_from("coordinator.default").unwrap_or_else(|_| unreachable!())
        );
        assert_eq!(
            server_name("[::1]:1313"),
            ServerName::try_from("::1").unwrap_or_else(|_| unreachable!())
        );
        assert_eq!(
            server_name("127.0.0.1:1313"),
            ServerName::try_from("127.0.0.1").unwrap_or_else(|_| unreachable!())
        );
        assert_eq!(
            server_name("bad host!:1"),
            ServerName::try_from("127.0.0.1").unwrap_or_else(|_| unreachable!())
        );
    }

    #[test]
    fn type_names_are_short() {
        assert_eq!(
            short_type_name::<SetManifestResponse>(),
            "SetManifestResponse"
        );
    }
}
