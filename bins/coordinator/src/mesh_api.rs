//! The mesh API (port 7777): mutual aTLS. The client's report is appraised against the
//! reference values of the manifest in force when the connection is accepted; connections are
//! refused outright (before the handshake) when there is no active state.
//!
//! - `POST /v1/mesh/cert`: HOST_DATA must be a `Policies` key; the client's TLS key gets a mesh
//!   certificate with the policy's SANs, the report's claims and the workload-secret ID, and the
//!   response carries the workload secret.
//! - `POST /v1/mesh/recover`: for peers whose policy has the `coordinator` role: seed, salt,
//!   mesh CA key and the manifest in force.
//!
//! A client whose attestation fails appraisal still completes the handshake (the rejection is
//! deferred) and gets a 403 naming the failed check on every request, so it can log why.

use std::sync::Arc;
use std::time::Duration;

use contrast_attest::PeerSlot;
use contrast_attest::atls::AtlsServer;
use contrast_coordinator::{MeshClient, State};
use contrast_core::api::{MeshCertResponse, path};
use http::Method;
use hyper::body::Incoming;
use rand_core::OsRng;

use crate::Coordinator;
use crate::http::{ApiError, AtlsService, Connection, Response, json, read_body};

/// Mesh requests carry no data; anything larger than this is not ours.
const MESH_BODY_LIMIT: usize = 1024;

/// The mesh API service.
#[derive(Debug)]
pub(crate) struct MeshApi {
    coordinator: Arc<Coordinator>,
}

impl MeshApi {
    /// The mesh API of `coordinator`.
    pub(crate) fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }
}

impl AtlsService for MeshApi {
    type Context = Arc<State>;

    fn name(&self) -> &'static str {
        "mesh"
    }

    fn configure(&self) -> Option<(rustls::ServerConfig, Arc<PeerSlot>, Arc<State>)> {
        // Upstream: no (or a stale) state, no handshake.
        let state = self.coordinator.core.active()?;
        match AtlsServer::new(Some(Arc::clone(&self.coordinator.issuer)))
            .with_client_validator(state.mesh_validator().clone())
            .with_deferred_client_rejection()
            .config(&mut OsRng)
        {
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

    async fn handle(
        self: Arc<Self>,
        connection: Arc<Connection<Arc<State>>>,
        request: http::Request<Incoming>,
    ) -> Response {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let endpoint = if path == path::MESH_RECOVER {
            "peer"
        } else {
            "mesh"
        };
        let result = match (path.as_str(), &method) {
            (path::MESH_CERT | path::MESH_RECOVER, &Method::POST) => {
                // The body is empty by protocol; read it (bounded) so the stream completes.
                match read_body(request.into_body(), MESH_BODY_LIMIT).await {
                    Ok(_) if path == path::MESH_CERT => self.mesh_cert(&connection),
                    Ok(_) => self.mesh_recover(&connection),
                    Err(error) => Err((error, "bad_request")),
                }
            }
            (path::MESH_CERT | path::MESH_RECOVER, _) => Err((
                ApiError::method_not_allowed(&method, &path, "POST"),
                "bad_request",
            )),
            _ => Err((ApiError::not_found(&path), "bad_request")),
        };
        let response = match result {
            Ok(response) => {
                self.coordinator.metrics.attestation(endpoint, None);
                response
            }
            Err((error, reason)) => {
                tracing::warn!(
                    path,
                    remote = %connection.remote,
                    reason,
                    %error,
                    "mesh API request refused"
                );
                self.coordinator.metrics.attestation(endpoint, Some(reason));
                error.response()
            }
        };
        self.coordinator
            .metrics
            .request(&path, response.status().as_u16());
        response
    }
}

type Refusal = (ApiError, &'static str);

/// The core's refusal as the API error and its metrics label.
fn refusal(error: contrast_coordinator::Error) -> Refusal {
    let reason = error.reason();
    (ApiError::from(error), reason)
}

impl MeshApi {
    fn client(connection: &Connection<Arc<State>>) -> MeshClient<'_> {
        MeshClient::from_handshake(connection.peer.as_ref(), connection.rejection.as_ref())
    }

    fn mesh_cert(&self, connection: &Connection<Arc<State>>) -> Result<Response, Refusal> {
        let issued = self
            .coordinator
            .core
            .mesh_certificate(&connection.context, Self::client(connection))
            .map_err(refusal)?;
        tracing::info!(
            remote = %connection.remote,
            host_data = %hex::encode(issued.host_data),
            common_name = issued.common_name,
            "mesh certificate issued"
        );
        Ok(json(&MeshCertResponse {
            mesh_ca_cert: issued.mesh_ca_pem.into_bytes(),
            cert_chain: issued.cert_chain_pem.into_bytes(),
            root_ca_cert: issued.root_ca_pem.into_bytes(),
            workload_secret: issued.workload_secret,
        }))
    }

    fn mesh_recover(&self, connection: &Connection<Arc<State>>) -> Result<Response, Refusal> {
        let answer = self
            .coordinator
            .core
            .peer_recovery_answer(&connection.context, Self::client(connection))
            .map_err(refusal)?;
        tracing::info!(remote = %connection.remote, "handing the state to a recovering peer");
        Ok(json(&answer))
    }
}
