//! The evidence API (port 1314, plain HTTP): `POST /attest` returns the Coordinator's
//! attestation document bound to the caller's nonce and to the history and CAs it serves
//! (upstream-compatible report data), and `GET /capabilities` the versioned APIs.

use std::sync::Arc;

use contrast_core::api::{
    ATTEST_BODY_LIMIT, ATTEST_NONCE_SIZE, AttestRequest, AttestResponse, CapabilitiesResponse, path,
};
use http::{Method, StatusCode};
use hyper::body::Incoming;

use crate::Coordinator;
use crate::http::{ApiError, PlainService, Response, json, read_json};
use crate::user_api::manifests_response;

/// The evidence API service.
#[derive(Debug)]
pub(crate) struct EvidenceApi {
    coordinator: Arc<Coordinator>,
}

impl EvidenceApi {
    /// The evidence API of `coordinator`.
    pub(crate) fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }

    async fn attest(&self, request: http::Request<Incoming>) -> Result<Response, ApiError> {
        let body: AttestRequest = read_json(request, ATTEST_BODY_LIMIT).await?;
        let nonce = <[u8; ATTEST_NONCE_SIZE]>::try_from(body.nonce.as_slice()).map_err(|_| {
            ApiError::invalid_argument(format!(
                "invalid nonce length: {} bytes, expected {ATTEST_NONCE_SIZE}",
                body.nonce.len()
            ))
        })?;
        let state = self.coordinator.core.manifests().await?;
        let served = manifests_response(&state);
        let coordinator = Arc::clone(&self.coordinator);
        let evidence = tokio::task::spawn_blocking(move || {
            coordinator
                .core
                .attest(&state, &nonce, &*coordinator.issuer)
        })
        .await
        .map_err(|e| ApiError::internal("the attestation task", &e))??;
        Ok(json(&AttestResponse {
            version: crate::http::VERSION.to_owned(),
            raw_attestation_doc: evidence.document,
            attestation_type: evidence.attestation_type,
            manifests: served.manifests,
            policies: served.policies,
            root_ca: served.root_ca,
            mesh_ca: served.mesh_ca,
        }))
    }
}

impl PlainService for EvidenceApi {
    fn name(&self) -> &'static str {
        "evidence"
    }

    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> Response {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let result = match (path.as_str(), &method) {
            (path::ATTEST, &Method::POST) => self.attest(request).await,
            (path::ATTEST, _) => Err(ApiError::method_not_allowed(&method, &path, "POST")),
            // This Coordinator offers no versioned plain-HTTP APIs (its versioned API is the
            // aTLS user API); upstream's empty list tells SDKs to use the legacy `/attest`.
            (path::CAPABILITIES, &Method::GET) => Ok(json(&CapabilitiesResponse {
                api_versions: Vec::new(),
            })),
            (path::CAPABILITIES, _) => Err(ApiError::method_not_allowed(&method, &path, "GET")),
            _ => Err(ApiError::not_found(&path)),
        };
        let response = result.unwrap_or_else(|error| {
            tracing::info!(path, %error, "evidence API request refused");
            error.response()
        });
        let status = response.status();
        self.coordinator.metrics.request(&path, status.as_u16());
        if status == StatusCode::OK {
            tracing::debug!(path, "evidence served");
        }
        response
    }
}
