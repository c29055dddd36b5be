//! Upstream's `/attest` (port 1314, plain HTTP): the Coordinator's evidence bound to a nonce,
//! its manifest history and its CAs. [`fetch_attestation`] asks for it; [`validate_attestation`]
//! checks a response, online or later from a saved copy, with upstream's `ValidateAttestation`
//! semantics. Nothing here is specific to contrast-rs: any Contrast Coordinator answers `/attest`.
//!
//! # What the check proves
//!
//! The evidence's REPORT_DATA is upstream's formula over the caller's nonce, the history's
//! latest transition hash and the two CA certificates
//! ([`contrast_core::api::attest_report_data`]), so one valid report vouches for exactly this
//! history and these CAs, fresh for this nonce. Which reference values it is appraised against
//! comes from the response itself (its newest manifest, as upstream does): a Coordinator that
//! serves an attacker's manifest passes. The caller must therefore compare the newest manifest
//! with the one it expects ([`VerifiedDeployment::check_latest_is`]) or, with an earlier head,
//! require the history to extend it ([`VerifiedDeployment::check_extends`]).

use std::time::Duration;

use bytes::Bytes;
use const_oid::ObjectIdentifier;
use contrast_attest::UnixTime;
use contrast_attest::atls::AttestedPeer;
use contrast_core::api::{ATTEST_NONCE_SIZE, AttestRequest, AttestResponse, ErrorCode};
use contrast_core::api::{ErrorResponse, attest_report_data, path};
use contrast_core::history::latest_transition_hash;
use contrast_core::manifest::ManifestDocument;
use http_body_util::{BodyExt, Full, Limited};
use tokio::net::TcpStream;

use crate::ClientError;
use crate::deployment::{DeploymentError, VerifiedDeployment, check_history};

/// The evidence type assumed when a response has no `attestation_type` (older Coordinators
/// only served SEV-SNP, as upstream's SDK assumes).
const DEFAULT_EVIDENCE_OID: ObjectIdentifier = contrast_attest::atls::SNP_ATTESTATION_OID;

/// Largest `/attest` response read (a history of large manifests and policies fits).
pub const MAX_ATTEST_RESPONSE: usize = 64 * 1024 * 1024;

/// How long [`fetch_attestation`] waits for the connection and for the answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A `/attest` response that passed [`validate_attestation`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedAttestation {
    /// The Coordinator's version string (not verified: it is not bound into the evidence).
    pub version: String,
    /// The manifest history, checked and bound into the evidence.
    pub deployment: VerifiedDeployment,
    /// The root CA certificate (PEM), bound into the evidence.
    pub root_ca: Vec<u8>,
    /// The mesh CA certificate (PEM), bound into the evidence; workloads' certificates chain
    /// to it.
    pub mesh_ca: Vec<u8>,
    /// The policies (initdata documents) the response carries whose SHA-256 is referenced by a
    /// manifest of the history; anything else in the response is dropped. Upstream does not
    /// bind policies into the evidence: they are trusted through their hashes in the manifests.
    pub policies: Vec<Vec<u8>>,
    /// The appraised Coordinator report.
    pub coordinator: AttestedPeer,
}

/// Checks a `/attest` response `body` (the raw JSON, e.g. as saved by the caller) for `nonce`
/// at time `now`, as upstream's SDK does: the newest manifest gives the validator
/// ([`crate::coordinator_validator`]: its SEV-SNP reference values, HOST_DATA one of its
/// coordinator policies); the evidence must carry `attest_report_data(nonce, latest transition
/// hash rebuilt from the manifests, root CA, mesh CA)` and pass that validator; then every
/// manifest must parse, every policy of the newest manifest must be present and the CAs must
/// be PEM certificates.
///
/// # Errors
/// The first failed check as a [`DeploymentError`]; [`DeploymentError::Evidence`] carries the
/// appraisal's reason.
pub fn validate_attestation(
    nonce: &[u8; ATTEST_NONCE_SIZE],
    body: &[u8],
    now: UnixTime,
) -> Result<VerifiedAttestation, DeploymentError> {
    let response: AttestResponse =
        serde_json::from_slice(body).map_err(|e| DeploymentError::MalformedAttestResponse {
            reason: e.to_string(),
        })?;
    let newest_raw = response
        .manifests
        .last()
        .ok_or(DeploymentError::EmptyHistory)?;
    let newest = ManifestDocument::parse(newest_raw.clone()).map_err(|e| {
        DeploymentError::InvalidManifest {
            index: response.manifests.len() - 1,
            reason: e.to_string(),
        }
    })?;
    let validator = crate::coordinator_validator(newest.manifest())?;
    let oid = evidence_oid(&response.attestation_type)?;
    let report_data = attest_report_data(
        nonce,
        &latest_transition_hash(&response.manifests),
        &response.root_ca,
        &response.mesh_ca,
    );
    let coordinator = validator
        .validate_evidence(&oid, &response.raw_attestation_doc, &report_data, now)
        .map_err(|e| DeploymentError::Evidence {
            reason: e.to_string(),
        })?;
    let deployment = check_history(
        &response.manifests,
        &response.policies,
        &response.root_ca,
        &response.mesh_ca,
    )?;
    let referenced: std::collections::BTreeSet<&String> = deployment
        .manifests
        .iter()
        .flat_map(|manifest| manifest.manifest().policies.keys())
        .collect();
    let policies = response
        .policies
        .into_iter()
        .filter(|policy| referenced.contains(&hex::encode(contrast_core::sha256(policy))))
        .collect();
    Ok(VerifiedAttestation {
        version: response.version,
        deployment,
        root_ca: response.root_ca,
        mesh_ca: response.mesh_ca,
        policies,
        coordinator,
    })
}

/// `attestation_type` as an OID: absent (older Coordinators) means SEV-SNP.
fn evidence_oid(arcs: &[u64]) -> Result<ObjectIdentifier, DeploymentError> {
    if arcs.is_empty() {
        return Ok(DEFAULT_EVIDENCE_OID);
    }
    let dotted = arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    ObjectIdentifier::new(&dotted).map_err(|e| DeploymentError::MalformedAttestResponse {
        reason: format!("attestation_type {arcs:?} is not an object identifier: {e}"),
    })
}

/// Asks the Coordinator's evidence API at `addr` (`host:1314`) for evidence bound to `nonce`:
/// `POST /attest` with `{"nonce": base64}`. Returns the raw response body, to be checked with
/// [`validate_attestation`] now or saved and checked later. Use a fresh random nonce per call.
///
/// # Errors
/// [`ClientError::Connect`], [`ClientError::Timeout`], [`ClientError::Protocol`] for transport
/// failures; [`ClientError::Evidence`] when the Coordinator answers with an error (412 when it
/// has no manifest or needs recovery).
pub async fn fetch_attestation(
    addr: &str,
    nonce: &[u8; ATTEST_NONCE_SIZE],
) -> Result<Vec<u8>, ClientError> {
    let timeout = |stage| ClientError::Timeout {
        addr: addr.to_owned(),
        stage,
        after: FETCH_TIMEOUT,
    };
    let protocol = |reason: String| ClientError::Protocol {
        addr: addr.to_owned(),
        reason,
    };
    let tcp = tokio::time::timeout(FETCH_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| timeout("connect"))?
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| protocol(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let body = serde_json::to_vec(&AttestRequest {
            nonce: nonce.to_vec(),
        })
        .map_err(|e| ClientError::Decode {
            what: "AttestRequest",
            reason: e.to_string(),
        })?;
        let request = http::Request::post(path::ATTEST)
            .header(http::header::HOST, addr)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ATTEST_RESPONSE)
            .collect()
            .await
            .map_err(|e| protocol(format!("reading the /attest response: {e}")))?
            .to_bytes();
        driver.abort();
        if status != 200 {
            let error = serde_json::from_slice::<ErrorResponse>(&body).unwrap_or_else(|_| {
                ErrorResponse::new(
                    ErrorCode::Other(format!("http_{status}")),
                    String::from_utf8_lossy(body.get(..200).unwrap_or(&body)).into_owned(),
                )
            });
            return Err(ClientError::Evidence {
                addr: addr.to_owned(),
                path: path::ATTEST,
                status,
                code: error.code,
                message: error.error,
            });
        }
        Ok(body.to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| timeout("request"))?
}
