//! One attested gRPC connection to the Coordinator (user API or mesh API, over aTLS), and the
//! client that opens them. The transport is `contrast_grpc`'s.

use std::time::Duration;

use contrast_attest::atls::{AtlsClient, VerifiedPeer};
use contrast_core::api::{
    GetManifestsResponse, MeshCertResponse, MeshRecoverResponse, RecoverRequest, RecoverResponse,
    SetManifestRequest, SetManifestResponse,
};
use contrast_grpc::client::{AtlsChannel, ConnectError, TransportError};
use contrast_grpc::meshapi::mesh_api_client::MeshApiClient;
use contrast_grpc::userapi::user_api_client::UserApiClient;
use contrast_grpc::{meshapi, method, userapi};

use super::ClientError;

/// Largest response message accepted by default (a `GetManifests` response carries the whole
/// history and every policy, so it can be large).
pub const MAX_RESPONSE_BODY: usize = contrast_grpc::MAX_RESPONSE;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// request). Timeouts: 10 s to connect and 10 s for the handshake, 30 s per call.
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
    /// HTTP/2 handshake; `request` bounds each call including its response.
    #[must_use]
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Sets the largest accepted response message (default [`MAX_RESPONSE_BODY`]).
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
    /// server is appraised here; ALPN `[atls:v1:nonce:<hex>, h2]`), then HTTP/2.
    ///
    /// # Errors
    /// [`ClientError::Resolve`], [`ClientError::Connect`], [`ClientError::Timeout`]
    /// (`"connect"` or `"handshake"`), [`ClientError::NotTls`], [`ClientError::Attestation`],
    /// [`ClientError::Handshake`].
    pub async fn connect(&self) -> Result<Session, ClientError> {
        let connected =
            contrast_grpc::client::connect(&self.addr, &self.atls, self.connect_timeout)
                .await
                .map_err(ClientError::from)?;
        let channel = connected.channel;
        let origin = channel.origin();
        Ok(Session {
            addr: self.addr.clone(),
            user: UserApiClient::with_origin(channel.clone(), origin.clone())
                .max_decoding_message_size(self.max_response_body)
                .max_encoding_message_size(contrast_grpc::USER_API_MAX_REQUEST),
            mesh: MeshApiClient::with_origin(channel.clone(), origin)
                .max_decoding_message_size(self.max_response_body),
            channel,
            peer: connected.peer,
            request_timeout: self.request_timeout,
            max_response_body: self.max_response_body,
        })
    }

    /// `UserAPI/SetManifest` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::set_manifest`].
    pub async fn set_manifest(
        &self,
        request: &SetManifestRequest,
    ) -> Result<Attested<SetManifestResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.set_manifest(request).await?;
        Ok(session.attested(value))
    }

    /// `UserAPI/GetManifests` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::get_manifests`].
    pub async fn get_manifests(&self) -> Result<Attested<GetManifestsResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.get_manifests().await?;
        Ok(session.attested(value))
    }

    /// `UserAPI/Recover` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::recover`].
    pub async fn recover(
        &self,
        request: &RecoverRequest,
    ) -> Result<Attested<RecoverResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.recover(request).await?;
        Ok(session.attested(value))
    }

    /// `MeshAPI/NewMeshCert` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::mesh_cert`].
    pub async fn mesh_cert(&self) -> Result<Attested<MeshCertResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.mesh_cert().await?;
        Ok(session.attested(value))
    }

    /// `MeshAPI/Recover` on a new connection.
    ///
    /// # Errors
    /// See [`CoordinatorClient::connect`] and [`Session::mesh_recover`].
    pub async fn mesh_recover(&self) -> Result<Attested<MeshRecoverResponse>, ClientError> {
        let session = self.connect().await?;
        let value = session.mesh_recover().await?;
        Ok(session.attested(value))
    }
}

impl From<ConnectError> for ClientError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Resolve { addr, source } => Self::Resolve { addr, source },
            ConnectError::NotTls { addr, reason } => Self::NotTls { addr, reason },
            ConnectError::Connect { addr, source } => Self::Connect { addr, source },
            ConnectError::Timeout { addr, stage, after } => Self::Timeout { addr, stage, after },
            ConnectError::Attestation { addr, source } => Self::Attestation { addr, source },
            ConnectError::Handshake { addr, reason } => Self::Handshake { addr, reason },
            other => Self::Handshake {
                addr: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// One attested gRPC connection: every call is answered by the peer appraised in its
/// handshake ([`Session::peer`]). Calls may run concurrently (HTTP/2 streams). Dropping the
/// session closes the connection.
#[derive(Debug)]
pub struct Session {
    addr: String,
    user: UserApiClient<AtlsChannel>,
    mesh: MeshApiClient<AtlsChannel>,
    channel: AtlsChannel,
    peer: VerifiedPeer,
    request_timeout: Duration,
    max_response_body: usize,
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

    /// A generated user API client on this session's connection (for calls this type has no
    /// method for).
    #[must_use]
    pub fn user_api(&self) -> UserApiClient<AtlsChannel> {
        self.user.clone()
    }

    /// A generated mesh API client on this session's connection.
    #[must_use]
    pub fn mesh_api(&self) -> MeshApiClient<AtlsChannel> {
        self.mesh.clone()
    }

    /// Runs one call within the request timeout and classifies its failure.
    async fn run<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.classify(method, status)),
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                stage: "request",
                after: self.request_timeout,
            }),
        }
    }

    /// A status the server sent is [`ClientError::Api`]; one tonic made from a broken
    /// connection is [`ClientError::Handshake`] (a TLS alert, e.g. the server refusing our
    /// certificate) or [`ClientError::Protocol`].
    fn classify(&self, method: &'static str, status: tonic::Status) -> ClientError {
        let ours = status
            .metadata()
            .get(contrast_grpc::ERROR_CODE_METADATA)
            .is_some();
        // tonic's own refusal of a response over the size limit (no server answers the user or
        // mesh API with OutOfRange).
        if !ours && status.code() == tonic::Code::OutOfRange {
            return ClientError::Protocol {
                addr: self.addr.clone(),
                reason: format!(
                    "the response exceeds the limit of {} bytes: {}",
                    self.max_response_body,
                    status.message()
                ),
            };
        }
        let from_transport = !ours && source_is_transport(&status);
        if from_transport {
            if let Some(reason) = self.channel.tls_error() {
                return ClientError::Handshake {
                    addr: self.addr.clone(),
                    reason,
                };
            }
            return ClientError::Protocol {
                addr: self.addr.clone(),
                reason: status.message().to_owned(),
            };
        }
        if let Some(reason) = self.channel.tls_error() {
            return ClientError::Handshake {
                addr: self.addr.clone(),
                reason,
            };
        }
        ClientError::Api {
            addr: self.addr.clone(),
            method,
            status: status.code(),
            code: contrast_grpc::error_code(&status),
            message: status.message().to_owned(),
        }
    }

    /// `UserAPI/SetManifest`.
    ///
    /// # Errors
    /// [`ClientError::Api`] for the server's refusal, [`ClientError::Timeout`] (`"request"`),
    /// [`ClientError::Protocol`], [`ClientError::Handshake`] (a TLS alert during the call).
    pub async fn set_manifest(
        &self,
        request: &SetManifestRequest,
    ) -> Result<SetManifestResponse, ClientError> {
        let mut client = self.user.clone();
        let request = userapi::SetManifestRequest::from(request.clone());
        self.run(method::SET_MANIFEST, client.set_manifest(request))
            .await
            .map(Into::into)
    }

    /// `UserAPI/GetManifests`.
    ///
    /// # Errors
    /// As [`Session::set_manifest`].
    pub async fn get_manifests(&self) -> Result<GetManifestsResponse, ClientError> {
        let mut client = self.user.clone();
        self.run(
            method::GET_MANIFESTS,
            client.get_manifests(userapi::GetManifestsRequest {}),
        )
        .await
        .map(Into::into)
    }

    /// `UserAPI/Recover`.
    ///
    /// # Errors
    /// As [`Session::set_manifest`].
    pub async fn recover(&self, request: &RecoverRequest) -> Result<RecoverResponse, ClientError> {
        let mut client = self.user.clone();
        let request = userapi::RecoverRequest::from(request.clone());
        self.run(method::USER_RECOVER, client.recover(request))
            .await
            .map(RecoverResponse::from)
    }

    /// `MeshAPI/NewMeshCert`.
    ///
    /// # Errors
    /// As [`Session::set_manifest`].
    pub async fn mesh_cert(&self) -> Result<MeshCertResponse, ClientError> {
        let mut client = self.mesh.clone();
        self.run(
            method::NEW_MESH_CERT,
            client.new_mesh_cert(meshapi::NewMeshCertRequest {}),
        )
        .await
        .map(Into::into)
    }

    /// `MeshAPI/Recover`.
    ///
    /// # Errors
    /// As [`Session::set_manifest`].
    pub async fn mesh_recover(&self) -> Result<MeshRecoverResponse, ClientError> {
        let mut client = self.mesh.clone();
        self.run(
            method::MESH_RECOVER,
            client.recover(meshapi::RecoverRequest {}),
        )
        .await
        .map(Into::into)
    }
}

/// Whether tonic made `status` from a failure of the connection rather than receiving it.
fn source_is_transport(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(current) = source {
        if current.is::<TransportError>() || current.is::<hyper::Error>() {
            return true;
        }
        source = current.source();
    }
    false
}
