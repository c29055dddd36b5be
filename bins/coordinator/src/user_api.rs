//! The user API (port 1313): server-attested TLS; the client certificate, when present, is the
//! caller's owner key.
//!
//! - `POST /v1/manifest`: the first set creates the seed and returns the seed shares; later
//!   sets must be authorised by a workload owner of the manifest in force (client key, or a
//!   detached signature over the next transition), may not change the seed-share owners, and
//!   rotate the mesh CA.
//! - `GET /v1/manifests`: the history, the CAs and the signed head.
//! - `POST /v1/recover`: a seed-share owner hands back seed and salt after a restart.

use std::sync::Arc;
use std::time::Duration;

use contrast_attest::atls::AtlsServer;
use contrast_attest::{PeerSlot, VerifiedPeer};
use contrast_coordinator::State;
use contrast_core::api::{
    ApiLatestTransition, GetManifestsResponse, MANIFEST_BODY_LIMIT, RecoverRequest,
    RecoverResponse, SeedSharesDoc, SetManifestRequest, SetManifestResponse, path,
};
use http::Method;
use hyper::body::Incoming;
use rand_core::OsRng;

use crate::Coordinator;
use crate::http::{ApiError, AtlsService, Connection, Response, json, read_json};

/// Body limit of `POST /v1/recover` (seed, salt and a flag).
const RECOVER_BODY_LIMIT: usize = 64 * 1024;

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
}

impl AtlsService for UserApi {
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

    async fn handle(
        self: Arc<Self>,
        connection: Arc<Connection<()>>,
        request: http::Request<Incoming>,
    ) -> Response {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let caller = connection.peer.as_ref();
        let result = match (path.as_str(), &method) {
            (path::SET_MANIFEST, &Method::POST) => self.set_manifest(request, caller).await,
            (path::GET_MANIFESTS, &Method::GET) => self.get_manifests().await,
            (path::RECOVER, &Method::POST) => self.recover(request, caller).await,
            (path::SET_MANIFEST | path::RECOVER, _) => {
                Err(ApiError::method_not_allowed(&method, &path, "POST"))
            }
            (path::GET_MANIFESTS, _) => Err(ApiError::method_not_allowed(&method, &path, "GET")),
            _ => Err(ApiError::not_found(&path)),
        };
        let response = result.unwrap_or_else(|error| {
            tracing::info!(path, remote = %connection.remote, %error, "user API request refused");
            error.response()
        });
        self.coordinator
            .metrics
            .request(&path, response.status().as_u16());
        response
    }
}

impl UserApi {
    async fn set_manifest(
        &self,
        request: http::Request<Incoming>,
        caller: Option<&VerifiedPeer>,
    ) -> Result<Response, ApiError> {
        let core = &self.coordinator.core;
        // Refused before the body is read.
        core.manifest_settable().await?;
        let body: SetManifestRequest = read_json(request, MANIFEST_BODY_LIMIT).await?;
        let set = core
            .set_manifest(body, caller.map(|peer| peer.spki_der.as_slice()))
            .await?;
        self.coordinator
            .metrics
            .set_generation(set.state.generation());
        Ok(json(&SetManifestResponse {
            version: crate::http::VERSION.to_owned(),
            root_ca: set.state.root_ca().pem.clone().into_bytes(),
            mesh_ca: set.state.mesh_ca().pem.clone().into_bytes(),
            seed_shares_doc: set.seed_shares.as_ref().map(SeedSharesDoc::from),
        }))
    }

    async fn get_manifests(&self) -> Result<Response, ApiError> {
        let state = self.coordinator.core.manifests().await?;
        Ok(json(&manifests_response(&state)))
    }

    async fn recover(
        &self,
        request: http::Request<Incoming>,
        caller: Option<&VerifiedPeer>,
    ) -> Result<Response, ApiError> {
        let core = &self.coordinator.core;
        // Refused before the body is read.
        core.recoverable().await?;
        let body: RecoverRequest = read_json(request, RECOVER_BODY_LIMIT).await?;
        let state = core
            .recover(body, caller.map(|peer| peer.spki_der.as_slice()))
            .await?;
        self.coordinator.metrics.set_generation(state.generation());
        Ok(json(&RecoverResponse {}))
    }
}

/// The `GET /v1/manifests` body for `state` (also served to peers' data owners).
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
