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

use contrast_attest::atls::AtlsServer;
use contrast_attest::{AtlsError, PeerSlot};
use contrast_ca::mesh_cert_extensions;
use contrast_core::api::{MeshCertResponse, MeshRecoverResponse, path};
use contrast_core::manifest::Role;
use http::Method;
use hyper::body::Incoming;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::Coordinator;
use crate::http::{ApiError, AtlsService, Connection, Response, json, read_body};
use crate::state::State;

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
        let state = self.coordinator.guard.active()?;
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

/// The appraised client, its TLS key (SPKI DER) and its policy entry.
type Admitted<'c> = (
    &'c contrast_attest::atls::AttestedPeer,
    &'c [u8],
    &'c contrast_core::manifest::PolicyEntry,
);

impl MeshApi {
    /// The appraised peer and its policy entry, or why not.
    fn admit(connection: &Connection<Arc<State>>) -> Result<Admitted<'_>, Refusal> {
        if let Some(rejection) = &connection.rejection {
            return Err((
                ApiError::permission_denied(format!("attestation refused: {rejection}")),
                rejection_reason(rejection),
            ));
        }
        let peer = connection.peer.as_ref().ok_or((
            ApiError::permission_denied("no client certificate"),
            "no_certificate",
        ))?;
        let attested = peer.attestation.as_ref().ok_or((
            ApiError::permission_denied("the client certificate carries no attestation"),
            "no_attestation",
        ))?;
        let entry = connection
            .context
            .manifest()
            .manifest()
            .policy_for_host_data(&attested.host_data)
            .ok_or_else(|| {
                (
                    ApiError::permission_denied(format!(
                        "policy hash {} not found in manifest",
                        hex::encode(attested.host_data)
                    )),
                    "unknown_host_data",
                )
            })?;
        Ok((attested, &peer.spki_der, entry))
    }

    fn mesh_cert(&self, connection: &Connection<Arc<State>>) -> Result<Response, Refusal> {
        let (attested, spki_der, entry) = Self::admit(connection)?;
        let state = &connection.context;
        let internal =
            |what: &str, e: &dyn std::fmt::Display| (ApiError::internal(what, e), "internal");
        let report = attested
            .report()
            .map_err(|e| internal("reading the verified report", &e))?;
        let extensions = mesh_cert_extensions(&report, &entry.workload_secret_id)
            .map_err(|e| internal("building the certificate claims", &e))?;
        let sans = entry.sans.clone().unwrap_or_default();
        let leaf = state
            .ca()
            .issue_mesh_cert(spki_der, &sans, &extensions, crate::now(), &mut OsRng)
            .map_err(|e| {
                (
                    ApiError::invalid_argument(format!("issuing the mesh certificate: {e}")),
                    "certificate",
                )
            })?;
        let workload_secret = if entry.workload_secret_id.is_empty() {
            Zeroizing::new(Vec::new())
        } else {
            let secret = state
                .seed_engine()
                .workload_secret(&entry.workload_secret_id)
                .map_err(|e| internal("deriving the workload secret", &e))?;
            Zeroizing::new(secret.as_bytes().to_vec())
        };
        tracing::info!(
            remote = %connection.remote,
            host_data = %hex::encode(attested.host_data),
            common_name = sans.first().map(String::as_str).unwrap_or_default(),
            "mesh certificate issued"
        );
        Ok(json(&MeshCertResponse {
            mesh_ca_cert: leaf.mesh_ca_pem.into_bytes(),
            cert_chain: leaf.cert_chain_pem.into_bytes(),
            root_ca_cert: leaf.root_ca_pem.into_bytes(),
            workload_secret,
        }))
    }

    fn mesh_recover(&self, connection: &Connection<Arc<State>>) -> Result<Response, Refusal> {
        let (attested, _, entry) = Self::admit(connection)?;
        if entry.role != Role::Coordinator {
            return Err((
                ApiError::permission_denied(format!(
                    "role {:?} not allowed to recover",
                    entry.role.as_str()
                )),
                "not_coordinator",
            ));
        }
        let state = &connection.context;
        let mesh_ca_key = state.ca().mesh_key().to_sec1_pem().map_err(|e| {
            (
                ApiError::internal("encoding the mesh CA key", &e),
                "internal",
            )
        })?;
        tracing::info!(
            remote = %connection.remote,
            host_data = %hex::encode(attested.host_data),
            "handing the state to a recovering peer"
        );
        Ok(json(&MeshRecoverResponse {
            seed: Zeroizing::new(state.seed_engine().seed().to_vec()),
            salt: state.seed_engine().salt().to_vec(),
            mesh_ca_key: Zeroizing::new(mesh_ca_key.as_bytes().to_vec()),
            latest_manifest: state.manifest().raw().to_vec(),
        }))
    }
}

/// A short, stable label for the metrics.
fn rejection_reason(error: &AtlsError) -> &'static str {
    use contrast_attest::Error;
    match error {
        AtlsError::Appraisal(Error::NoReferenceValuesMatched { .. }) => "reference_values",
        AtlsError::Appraisal(_) => "appraisal",
        AtlsError::NoAttestationExtension => "no_attestation",
        AtlsError::ReportDataMismatch { .. } => "report_data",
        _ => "atls",
    }
}
