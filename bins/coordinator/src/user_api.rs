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
use contrast_ca::MeshCaKey;
use contrast_core::api::{
    ApiLatestTransition, ErrorCode, GetManifestsResponse, MANIFEST_BODY_LIMIT, RecoverRequest,
    RecoverResponse, SeedSharesDoc, SetManifestRequest, SetManifestResponse, path,
};
use contrast_core::history::HistoryError;
use contrast_core::manifest::ManifestDocument;
use contrast_core::owner::{
    AuthorizationError, WorkloadOwnerPublicKey, authorize_recovery, authorize_update_by_key,
    check_seedshare_owners_unchanged, next_transition_hash, verify_update_signature,
};
use contrast_core::seed::{Salt, Seed, SeedEngine};
use contrast_core::seedshare::encrypt_seed_shares;
use contrast_store::HistoryStoreError;
use http::Method;
use hyper::body::Incoming;
use rand_core::OsRng;

use crate::Coordinator;
use crate::http::{ApiError, AtlsService, Connection, Response, json, read_json};
use crate::state::{Phase, Recovered, ResetError, State, UpdateError};

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
        let phase = self.coordinator.phase().await?;
        let old = match &phase {
            Phase::Uninitialized => None,
            Phase::Active(state) => Some(Arc::clone(state)),
            Phase::NeedsRecovery | Phase::Stale(_) => return Err(ApiError::needs_recovery()),
        };
        let body: SetManifestRequest = read_json(request, MANIFEST_BODY_LIMIT).await?;
        let manifest = ManifestDocument::parse(body.manifest)
            .map_err(|e| ApiError::invalid_argument(format!("manifest does not parse: {e}")))?;
        manifest
            .manifest()
            .validate()
            .map_err(|e| ApiError::invalid_argument(format!("manifest is invalid: {e}")))?;
        let expected_previous = body
            .previous_transition_hash
            .as_deref()
            .map(|hash| {
                <[u8; 32]>::try_from(hash).map_err(|_| {
                    ApiError::invalid_argument(format!(
                        "previous_transition_hash is {} bytes, expected 32",
                        hash.len()
                    ))
                })
            })
            .transpose()?;

        let (seed_engine, seed_shares) = match &old {
            Some(old) => {
                authorize_update(
                    old,
                    &manifest,
                    caller,
                    body.signature.as_deref(),
                    expected_previous.as_ref(),
                )?;
                check_seedshare_owners_unchanged(
                    old.manifest()
                        .manifest()
                        .seedshare_owner_pub_keys
                        .as_deref(),
                    manifest.manifest().seedshare_owner_pub_keys.as_deref(),
                )
                .map_err(|e| ApiError::permission_denied(e.to_string()))?;
                (old.seed_engine_arc(), None)
            }
            None => {
                let seed = Seed::generate(&mut OsRng);
                let salt = Salt::generate(&mut OsRng);
                let shares = encrypt_seed_shares(
                    seed.as_bytes(),
                    salt.as_bytes(),
                    manifest
                        .manifest()
                        .seedshare_owner_pub_keys
                        .as_deref()
                        .unwrap_or_default(),
                )
                .map_err(|e| ApiError::invalid_argument(format!("encrypting seed shares: {e}")))?;
                let engine = SeedEngine::from_parts(&seed, &salt)
                    .map_err(|e| ApiError::internal("deriving keys from the new seed", &e))?;
                (Arc::new(engine), Some(shares))
            }
        };

        let state = self
            .coordinator
            .guard
            .update(
                old.as_ref(),
                seed_engine,
                manifest,
                body.policies,
                expected_previous.as_ref(),
            )
            .await
            .map_err(update_error)?;
        self.coordinator.metrics.set_generation(state.generation());
        tracing::info!(
            generation = state.generation(),
            head = %hex::encode(state.latest().transition_hash),
            "manifest set"
        );
        Ok(json(&SetManifestResponse {
            version: crate::http::VERSION.to_owned(),
            root_ca: state.ca().root().pem.clone().into_bytes(),
            mesh_ca: state.ca().mesh_ca().pem.clone().into_bytes(),
            seed_shares_doc: seed_shares.as_ref().map(SeedSharesDoc::from),
        }))
    }

    async fn get_manifests(&self) -> Result<Response, ApiError> {
        let state = match self.coordinator.phase().await? {
            Phase::Active(state) => state,
            Phase::Uninitialized => return Err(ApiError::no_manifest()),
            Phase::NeedsRecovery | Phase::Stale(_) => return Err(ApiError::needs_recovery()),
        };
        Ok(json(&manifests_response(&state)))
    }

    async fn recover(
        &self,
        request: http::Request<Incoming>,
        caller: Option<&VerifiedPeer>,
    ) -> Result<Response, ApiError> {
        let old = match self.coordinator.phase().await? {
            Phase::Uninitialized => {
                return Err(ApiError::new(
                    ErrorCode::NoManifest,
                    "no state to recover from: set a manifest instead",
                ));
            }
            Phase::Active(_) => {
                return Err(ApiError::new(
                    ErrorCode::AlreadyRecovered,
                    "coordinator is already recovered",
                ));
            }
            Phase::NeedsRecovery => None,
            Phase::Stale(state) => Some(state),
        };
        let body: RecoverRequest = read_json(request, RECOVER_BODY_LIMIT).await?;
        if !body.force {
            let ready = self.coordinator.peers.ready_peers().await;
            if !ready.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::AlreadyRecovered,
                    format!(
                        "rejecting user recovery because {} recovered peers are available ({}); \
                         they will recover this Coordinator, or retry with force",
                        ready.len(),
                        ready.join(", ")
                    ),
                ));
            }
        }
        let caller_pkcs1 = caller
            .ok_or_else(|| {
                ApiError::permission_denied(
                    "recovery needs the seed-share owner's key as the TLS client key",
                )
            })
            .and_then(|peer| {
                crate::rsa_pkcs1_public_key(&peer.spki_der).map_err(|reason| {
                    ApiError::permission_denied(format!(
                        "recovery needs the seed-share owner's RSA key as the TLS client key: {reason}"
                    ))
                })
            })?;

        let state = self
            .coordinator
            .guard
            .reset(old.as_ref(), async |manifest: &ManifestDocument| {
                authorize_recovery(
                    manifest
                        .manifest()
                        .seedshare_owner_pub_keys
                        .as_deref()
                        .unwrap_or_default(),
                    &caller_pkcs1,
                )
                .map_err(|e| ApiError::permission_denied(e.to_string()))?;
                let seed_engine = SeedEngine::new(&body.seed, &body.salt)
                    .map_err(|e| ApiError::invalid_argument(format!("seed or salt: {e}")))?;
                Ok(Recovered {
                    seed_engine: Arc::new(seed_engine),
                    // User recovery cannot know the old mesh key: workloads must re-attest.
                    mesh_key: MeshCaKey::generate(&mut OsRng),
                })
            })
            .await
            .map_err(reset_error)?;
        self.coordinator.metrics.set_generation(state.generation());
        tracing::info!(
            generation = state.generation(),
            head = %hex::encode(state.latest().transition_hash),
            "recovered by a seed-share owner"
        );
        Ok(json(&RecoverResponse {}))
    }
}

/// Authorises an update against the manifest in force: a detached workload-owner signature
/// over the next transition if one is given, else the TLS client key.
fn authorize_update(
    old: &State,
    manifest: &ManifestDocument,
    caller: Option<&VerifiedPeer>,
    signature: Option<&[u8]>,
    expected_previous: Option<&[u8; 32]>,
) -> Result<(), ApiError> {
    let current = old.manifest().manifest();
    let denied = |e: AuthorizationError| match e {
        AuthorizationError::BadSignature { .. } | AuthorizationError::MalformedSignature { .. } => {
            ApiError::new(ErrorCode::InvalidSignature, e.to_string())
        }
        other => ApiError::permission_denied(other.to_string()),
    };
    if let Some(signature) = signature {
        // The signer commits to the head it saw; a different head is a conflict, not a bad
        // signature, and is reported as such by the history update.
        let head = old.latest().transition_hash;
        let previous = expected_previous.copied().unwrap_or(head);
        let next = next_transition_hash(&manifest.hash(), &previous);
        verify_update_signature(
            current
                .workload_owner_pub_keys
                .as_deref()
                .unwrap_or_default(),
            &next,
            signature,
        )
        .map_err(denied)?;
        return Ok(());
    }
    let peer = caller.ok_or_else(|| {
        ApiError::permission_denied(
            "updating the manifest needs a workload owner's key as the TLS client key, or a \
             signature",
        )
    })?;
    let key = WorkloadOwnerPublicKey::from_pkix_der(&peer.spki_der).map_err(|e| {
        ApiError::permission_denied(format!("the client key is no workload-owner key: {e}"))
    })?;
    authorize_update_by_key(
        current.workload_owner_pub_keys.as_deref(),
        current.workload_owner_key_digests.as_deref(),
        &key,
    )
    .map_err(denied)
}

fn update_error(error: UpdateError) -> ApiError {
    match error {
        UpdateError::History(HistoryStoreError::Conflict) => ApiError::new(
            ErrorCode::ManifestConflict,
            "coordinator state was updated concurrently; fetch the history and retry",
        ),
        UpdateError::History(error @ HistoryStoreError::TransitionMismatch { .. }) => {
            ApiError::new(ErrorCode::ManifestConflict, error.to_string())
        }
        UpdateError::History(error @ HistoryStoreError::MissingPolicy { .. }) => {
            ApiError::invalid_argument(error.to_string())
        }
        other => ApiError::internal("storing the manifest", &other),
    }
}

fn reset_error(error: ResetError<ApiError>) -> ApiError {
    match error {
        ResetError::Unauthorized(error) => error,
        ResetError::Verification(HistoryStoreError::Corruption(HistoryError::BadSignature)) => {
            ApiError::permission_denied(
                "the seed and salt do not match this Coordinator's history: the signed head \
                 does not verify with the key derived from them",
            )
        }
        ResetError::NoHistory => ApiError::new(ErrorCode::NoManifest, "no state to recover from"),
        error @ (ResetError::HeadMoved { .. } | ResetError::Replaced) => {
            ApiError::new(ErrorCode::ManifestConflict, error.to_string())
        }
        other => ApiError::internal("recovering the state", &other),
    }
}

/// The `GET /v1/manifests` body for `state` (also served to peers' data owners).
pub(crate) fn manifests_response(state: &State) -> GetManifestsResponse {
    let history = state.history();
    GetManifestsResponse {
        version: crate::http::VERSION.to_owned(),
        manifests: history.manifests.clone(),
        policies: history.policies.values().cloned().collect(),
        root_ca: state.ca().root().pem.clone().into_bytes(),
        mesh_ca: state.ca().mesh_ca().pem.clone().into_bytes(),
        latest_transition: ApiLatestTransition::from(state.latest()),
    }
}
