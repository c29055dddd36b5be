//! The user API (port 1313): upstream's `edgelesssys.contrast.userapi.UserAPI` over
//! server-attested TLS; the client certificate, when present, is the caller's owner key.
//!
//! - `SetManifest`: the first set creates the seed and returns the seed shares; later sets
//!   must be authorised by a workload owner of the manifest in force (client key, or a detached
//!   signature over the next transition), may not change the seed-share owners, and rotate the
//!   mesh CA.
//! - `GetManifests`: the history, the CAs and the signed head.
//! - `Recover`: a seed-share owner hands back seed and salt after a restart.
//!
//! Refusals carry upstream's gRPC code and the core's explanation ([`refusal`]).
//!
//! A `SetManifest` request (up to `contrast_grpc::USER_API_MAX_REQUEST`) is admitted before its
//! body is read ([`AdmitUpdates`], the core's `admit_update`): a caller that cannot be
//! authorised whatever it sends is refused at once, and only a few updates are read at a time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use contrast_attest::atls::AtlsServer;
use contrast_attest::{PeerSlot, VerifiedPeer};
use contrast_coordinator::State;
use contrast_core::api::{ApiLatestTransition, GetManifestsResponse, SeedSharesDoc};
use contrast_grpc::server::{Acceptor, Connection, connection};
use contrast_grpc::userapi::user_api_server::{UserApi as UserApiService, UserApiServer};
use contrast_grpc::{method, userapi};
use hyper::body::Incoming;
use rand_core::OsRng;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::{Request, Response, Status};

use crate::Coordinator;

/// The user API service.
#[derive(Debug)]
pub(crate) struct UserApi {
    coordinator: Arc<Coordinator>,
}

impl UserApi {
    /// The user API of `coordinator`.
    pub(crate) fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }

    /// The tonic service, with the user API's request size limit, behind the admission of
    /// manifest updates.
    pub(crate) fn service(coordinator: Arc<Coordinator>) -> AdmitUpdates<UserApiServer<Self>> {
        AdmitUpdates {
            inner: UserApiServer::new(Self::new(Arc::clone(&coordinator)))
                .max_decoding_message_size(contrast_grpc::USER_API_MAX_REQUEST),
            coordinator,
        }
    }
}

/// In front of the user API: a `SetManifest` call is first admitted by the core
/// (`admit_update`, with the caller's TLS key from the connection) and only then handed to the
/// service, which reads its body; the admission is held until the call is answered. A refusal
/// is answered without polling the body, with the status the handler would answer (code,
/// message, `contrast-error-code`). Other calls pass through.
#[derive(Debug, Clone)]
pub(crate) struct AdmitUpdates<S> {
    inner: S,
    coordinator: Arc<Coordinator>,
}

impl<S> Service<http::Request<Incoming>> for AdmitUpdates<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        if request.uri().path() != method::SET_MANIFEST {
            return Box::pin(self.inner.call(request));
        }
        // The clone is ready only after poll_ready: call the one that was polled.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let coordinator = Arc::clone(&self.coordinator);
        Box::pin(async move {
            let started = Instant::now();
            let connection = request.extensions().get::<Arc<Connection<()>>>().cloned();
            let caller = connection
                .as_ref()
                .and_then(|connection| connection.peer.as_ref())
                .map(|peer| peer.spki_der.as_slice());
            match coordinator.core.admit_update(caller).await {
                Ok(admission) => {
                    let response = inner.call(request).await;
                    drop(admission);
                    response
                }
                Err(error) => {
                    let status = refusal(&error);
                    coordinator.metrics.call(
                        method::SET_MANIFEST,
                        status.code(),
                        started.elapsed(),
                    );
                    tracing::info!(
                        method = method::SET_MANIFEST,
                        remote = connection.map_or_else(String::new, |c| c.remote.to_string()),
                        code = ?status.code(),
                        message = status.message(),
                        "user API request refused before its body was read"
                    );
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// Configures the user API's connections.
#[derive(Debug)]
pub(crate) struct UserAcceptor {
    coordinator: Arc<Coordinator>,
}

impl UserAcceptor {
    /// The acceptor of `coordinator`'s user API.
    pub(crate) fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }
}

impl Acceptor for UserAcceptor {
    type Context = ();

    fn name(&self) -> &'static str {
        "user"
    }

    fn configure(&self) -> Option<(rustls::ServerConfig, Arc<PeerSlot>, ())> {
        match AtlsServer::new(Some(Arc::clone(&self.coordinator.issuer))).config(&mut OsRng) {
            Ok((config, slot)) => Some((config, slot, ())),
            Err(error) => {
                tracing::error!(%error, "building the user API TLS config");
                None
            }
        }
    }

    fn handshake_done(&self, elapsed: Duration, ok: bool) {
        self.coordinator.metrics.handshake("user", elapsed, ok);
    }

    fn connection_refused(&self) {
        self.coordinator.metrics.connection_refused("user");
    }
}

/// The core's refusal as a gRPC status with upstream's code; internal failures are logged in
/// full.
pub(crate) fn refusal(error: &contrast_coordinator::Error) -> Status {
    let code = error.code();
    if code == contrast_core::api::ErrorCode::Internal {
        tracing::error!(%error, "internal error");
    }
    contrast_grpc::status(&code, error.to_string())
}

/// The caller's verified client certificate, if it sent one.
fn caller<T>(request: &Request<T>) -> Option<VerifiedPeer> {
    connection::<(), T>(request).and_then(|connection| connection.peer.clone())
}

fn remote<T>(request: &Request<T>) -> String {
    connection::<(), T>(request)
        .map_or_else(String::new, |c: &Arc<Connection<()>>| c.remote.to_string())
}

impl UserApi {
    /// Records the call's metrics and logs a refusal.
    fn observe<T>(
        &self,
        method: &'static str,
        remote: &str,
        started: Instant,
        result: Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        let code = result.as_ref().err().map_or(tonic::Code::Ok, Status::code);
        self.coordinator
            .metrics
            .call(method, code, started.elapsed());
        match result {
            Ok(value) => Ok(Response::new(value)),
            Err(status) => {
                tracing::info!(method, remote, code = ?status.code(), message = status.message(), "user API request refused");
                Err(status)
            }
        }
    }

    async fn set(
        &self,
        caller: Option<VerifiedPeer>,
        request: userapi::SetManifestRequest,
    ) -> Result<userapi::SetManifestResponse, Status> {
        let core = &self.coordinator.core;
        // The state rules come first (as upstream: stale before a malformed manifest).
        core.manifest_settable().await.map_err(|e| refusal(&e))?;
        let set = core
            .set_manifest(
                request.into(),
                caller.as_ref().map(|peer| peer.spki_der.as_slice()),
            )
            .await
            .map_err(|e| refusal(&e))?;
        self.coordinator
            .metrics
            .set_generation(set.state.generation());
        Ok(userapi::SetManifestResponse {
            root_ca: set.state.root_ca().pem.clone().into_bytes(),
            mesh_ca: set.state.mesh_ca().pem.clone().into_bytes(),
            seed_shares_doc: set
                .seed_shares
                .as_ref()
                .map(|shares| SeedSharesDoc::from(shares).into()),
        })
    }

    async fn get(&self) -> Result<userapi::GetManifestsResponse, Status> {
        let state = self
            .coordinator
            .core
            .manifests()
            .await
            .map_err(|e| refusal(&e))?;
        Ok(manifests_response(&state).into())
    }

    async fn recover_state(
        &self,
        caller: Option<VerifiedPeer>,
        request: userapi::RecoverRequest,
    ) -> Result<userapi::RecoverResponse, Status> {
        let core = &self.coordinator.core;
        core.recoverable().await.map_err(|e| refusal(&e))?;
        let state = core
            .recover(
                request.into(),
                caller.as_ref().map(|peer| peer.spki_der.as_slice()),
            )
            .await
            .map_err(|e| refusal(&e))?;
        self.coordinator.metrics.set_generation(state.generation());
        Ok(userapi::RecoverResponse {
            latest_transition_hash: state.latest().transition_hash.to_vec(),
            generation: u64::try_from(state.generation()).unwrap_or(u64::MAX),
        })
    }
}

#[tonic::async_trait]
impl UserApiService for UserApi {
    async fn set_manifest(
        &self,
        request: Request<userapi::SetManifestRequest>,
    ) -> Result<Response<userapi::SetManifestResponse>, Status> {
        let started = Instant::now();
        let (caller, remote) = (caller(&request), remote(&request));
        let result = self.set(caller, request.into_inner()).await;
        self.observe(method::SET_MANIFEST, &remote, started, result)
    }

    async fn get_manifests(
        &self,
        request: Request<userapi::GetManifestsRequest>,
    ) -> Result<Response<userapi::GetManifestsResponse>, Status> {
        let started = Instant::now();
        let remote = remote(&request);
        let result = self.get().await;
        self.observe(method::GET_MANIFESTS, &remote, started, result)
    }

    async fn recover(
        &self,
        request: Request<userapi::RecoverRequest>,
    ) -> Result<Response<userapi::RecoverResponse>, Status> {
        let started = Instant::now();
        let (caller, remote) = (caller(&request), remote(&request));
        let result = self.recover_state(caller, request.into_inner()).await;
        self.observe(method::USER_RECOVER, &remote, started, result)
    }
}

/// The `GetManifests` answer for `state` (also the history `/attest` binds).
pub(crate) fn manifests_response(state: &State) -> GetManifestsResponse {
    let history = state.history();
    GetManifestsResponse {
        version: crate::http::VERSION.to_owned(),
        manifests: history.manifests.clone(),
        policies: history.policies.values().cloned().collect(),
        root_ca: state.root_ca().pem.clone().into_bytes(),
        mesh_ca: state.mesh_ca().pem.clone().into_bytes(),
        latest_transition: ApiLatestTransition::from(state.latest()),
    }
}
