//! The mesh API (port 7777): upstream's `meshapi.MeshAPI` over mutual aTLS. The client's report
//! is appraised against the reference values of the manifest in force when the connection is
//! accepted. While no state is active (no manifest yet, in recovery), connections are
//! accepted without asking for a client certificate and every call is refused with the reason
//! (`no_manifest`, `needs_recovery`), so a waiting initializer can log what it waits for
//! (upstream refuses the handshake, which tells the workload nothing).
//!
//! - `NewMeshCert`: HOST_DATA must be a `Policies` key; the client's TLS key gets a mesh
//!   certificate with the policy's SANs, the report's claims and the workload-secret ID, and the
//!   response carries the workload secret.
//! - `Recover`: for peers whose policy has the `coordinator` role: seed, salt, mesh CA key and
//!   the manifest in force.
//!
//! A client whose attestation fails appraisal still completes the handshake (the rejection is
//! deferred) and gets `PermissionDenied` naming the failed check on every call, so it can log
//! why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contrast_attest::PeerSlot;
use contrast_attest::atls::AtlsServer;
use contrast_coordinator::{MeshClient, State};
use contrast_grpc::meshapi::mesh_api_server::{MeshApi as MeshApiService, MeshApiServer};
use contrast_grpc::server::{Acceptor, Connection, connection};
use contrast_grpc::{meshapi, method};
use rand_core::OsRng;
use tonic::{Request, Response, Status};

use crate::Coordinator;
use crate::user_api::refusal;

/// The mesh API service.
#[derive(Debug)]
pub(crate) struct MeshApi {
    coordinator: Arc<Coordinator>,
}

impl MeshApi {
    /// The tonic service, with the mesh API's (small) request size limit.
    pub(crate) fn service(coordinator: Arc<Coordinator>) -> MeshApiServer<Self> {
        MeshApiServer::new(Self { coordinator })
            .max_decoding_message_size(contrast_grpc::MESH_API_MAX_REQUEST)
    }
}

/// Configures the mesh API's connections: appraised against the active state's manifest, or,
/// without one, only to tell the client why nothing is served.
#[derive(Debug)]
pub(crate) struct MeshAcceptor {
    coordinator: Arc<Coordinator>,
}

impl MeshAcceptor {
    /// The acceptor of `coordinator`'s mesh API.
    pub(crate) fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }
}

impl Acceptor for MeshAcceptor {
    /// The state the connection was accepted under; `None` when none was active.
    type Context = Option<Arc<State>>;

    fn name(&self) -> &'static str {
        "mesh"
    }

    fn configure(&self) -> Option<(rustls::ServerConfig, Arc<PeerSlot>, Self::Context)> {
        let state = self.coordinator.core.active();
        let server = AtlsServer::new(Some(Arc::clone(&self.coordinator.issuer)));
        let server = match &state {
            Some(state) => server
                .with_client_validator(state.mesh_validator().clone())
                .with_deferred_client_rejection(),
            // Nothing to appraise against: no client certificate is asked for, and every call
            // is answered with the reason.
            None => server,
        };
        match server.config(&mut OsRng) {
            Ok((config, slot)) => Some((config, slot, state)),
            Err(error) => {
                tracing::error!(%error, "building the mesh API TLS config");
                None
            }
        }
    }

    fn handshake_done(&self, elapsed: Duration, ok: bool) {
        self.coordinator.metrics.handshake("mesh", elapsed, ok);
    }

    fn connection_refused(&self) {
        self.coordinator.metrics.connection_refused("mesh");
    }
}

type Refusal = (Status, &'static str);

impl MeshApi {
    fn client(connection: &Connection<Option<Arc<State>>>) -> MeshClient<'_> {
        MeshClient::from_handshake(connection.peer.as_ref(), connection.rejection.as_ref())
    }

    /// Answers one call: `endpoint` names it in the attestation metrics. On a connection
    /// accepted without an active state the answer is the reason nothing is served.
    async fn answer<Req, T>(
        &self,
        request: &Request<Req>,
        method: &'static str,
        endpoint: &'static str,
        handle: impl FnOnce(&Connection<Option<Arc<State>>>, &Arc<State>) -> Result<T, Refusal>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = match connection::<Option<Arc<State>>, Req>(request) {
            Some(connection) => {
                let result = match &connection.context {
                    Some(state) => handle(connection, state),
                    None => {
                        // Expected while workloads start before the first set: not a warning.
                        let error = self.coordinator.core.mesh_refusal_without_state().await;
                        tracing::info!(
                            method,
                            remote = %connection.remote,
                            reason = error.reason(),
                            "mesh API request while not serving: {error}"
                        );
                        return self.refused(method, endpoint, started, &error);
                    }
                };
                result.inspect_err(|(status, reason)| {
                    tracing::warn!(
                        method,
                        remote = %connection.remote,
                        reason,
                        message = status.message(),
                        "mesh API request refused"
                    );
                })
            }
            None => Err((Status::internal("no connection state"), "internal")),
        };
        self.outcome(method, endpoint, started, result)
    }

    fn refused<T>(
        &self,
        method: &'static str,
        endpoint: &'static str,
        started: Instant,
        error: &contrast_coordinator::Error,
    ) -> Result<Response<T>, Status> {
        self.outcome(
            method,
            endpoint,
            started,
            Err((refusal(error), error.reason())),
        )
    }

    /// Counts the call and its attestation outcome, and turns it into tonic's answer.
    fn outcome<T>(
        &self,
        method: &'static str,
        endpoint: &'static str,
        started: Instant,
        result: Result<T, Refusal>,
    ) -> Result<Response<T>, Status> {
        let metrics = &self.coordinator.metrics;
        match result {
            Ok(value) => {
                metrics.attestation(endpoint, None);
                metrics.call(method, tonic::Code::Ok, started.elapsed());
                Ok(Response::new(value))
            }
            Err((status, reason)) => {
                metrics.attestation(endpoint, Some(reason));
                metrics.call(method, status.code(), started.elapsed());
                Err(status)
            }
        }
    }

    fn mesh_cert(
        &self,
        connection: &Connection<Option<Arc<State>>>,
        state: &Arc<State>,
    ) -> Result<meshapi::NewMeshCertResponse, Refusal> {
        let mut issued = self
            .coordinator
            .core
            .mesh_certificate(state, Self::client(connection))
            .map_err(|e| (refusal(&e), e.reason()))?;
        tracing::info!(
            remote = %connection.remote,
            host_data = %hex::encode(issued.host_data),
            common_name = issued.common_name,
            "mesh certificate issued"
        );
        Ok(meshapi::NewMeshCertResponse {
            mesh_ca_cert: issued.mesh_ca_pem.into_bytes(),
            cert_chain: issued.cert_chain_pem.into_bytes(),
            root_ca_cert: issued.root_ca_pem.into_bytes(),
            workload_secret: std::mem::take(&mut *issued.workload_secret),
        })
    }

    fn peer_recover(
        &self,
        connection: &Connection<Option<Arc<State>>>,
        state: &Arc<State>,
    ) -> Result<meshapi::RecoverResponse, Refusal> {
        let answer = self
            .coordinator
            .core
            .peer_recovery_answer(state, Self::client(connection))
            .map_err(|e| (refusal(&e), e.reason()))?;
        tracing::info!(remote = %connection.remote, "handing the state to a recovering peer");
        Ok(answer.into())
    }
}

#[tonic::async_trait]
impl MeshApiService for MeshApi {
    async fn new_mesh_cert(
        &self,
        request: Request<meshapi::NewMeshCertRequest>,
    ) -> Result<Response<meshapi::NewMeshCertResponse>, Status> {
        self.answer(&request, method::NEW_MESH_CERT, "mesh", |c, state| {
            self.mesh_cert(c, state)
        })
        .await
    }

    async fn recover(
        &self,
        request: Request<meshapi::RecoverRequest>,
    ) -> Result<Response<meshapi::RecoverResponse>, Status> {
        self.answer(&request, method::MESH_RECOVER, "peer", |c, state| {
            self.peer_recover(c, state)
        })
        .await
    }
}
