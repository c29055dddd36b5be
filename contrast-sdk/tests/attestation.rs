//! `/attest` responses checked offline ([`validate_attestation`]), as upstream's SDK does: a
//! response a simulated Coordinator would give passes; each thing the evidence binds (nonce,
//! history, CAs, the Coordinator's identity, the evidence type) changed alone is refused with
//! its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use contrast_attest::UnixTime;
use contrast_core::api::{AttestResponse, attest_report_data};
use contrast_core::history::latest_transition_hash;
use contrast_core::manifest::ManifestDocument;
use contrast_sdk::{DeploymentError, validate_attestation};
use contrast_testkit::fixtures::{
    Workload, coordinator_workload, environment, manifest, pem_certificate, policies,
};
use rand_core::{OsRng, RngCore};

const NONCE: [u8; 32] = [0x5a; 32];

fn now() -> UnixTime {
    UnixTime::from(SystemTime::now())
}

/// What a Coordinator with HOST_DATA `host_data` answers for `nonce` over `manifests`.
fn response_from(
    host_data: [u8; 32],
    nonce: &[u8; 32],
    manifests: Vec<Vec<u8>>,
    policies: Vec<Vec<u8>>,
) -> AttestResponse {
    let (_, env) = environment();
    let mut chip_id = [0u8; 64];
    OsRng.fill_bytes(&mut chip_id);
    let issuer = env.issuer(env.guest(chip_id, host_data).unwrap());
    let (root_ca, mesh_ca) = (pem_certificate(), pem_certificate());
    let report_data = attest_report_data(
        nonce,
        &latest_transition_hash(&manifests),
        &root_ca,
        &mesh_ca,
    );
    AttestResponse {
        version: "test".into(),
        raw_attestation_doc: issuer.issue(&report_data).unwrap(),
        attestation_type: issuer.oid().arcs().map(u64::from).collect(),
        manifests,
        policies,
        root_ca,
        mesh_ca,
    }
}

fn workloads() -> Vec<Workload> {
    vec![Workload::new("web")]
}

fn genuine() -> AttestResponse {
    response_from(
        coordinator_workload().host_data(),
        &NONCE,
        vec![manifest(&workloads(), None)],
        policies(&workloads()),
    )
}

fn validate(
    response: &AttestResponse,
) -> Result<contrast_sdk::VerifiedAttestation, DeploymentError> {
    validate_attestation(&NONCE, &serde_json::to_vec(response).unwrap(), now())
}

fn evidence_reason(result: Result<contrast_sdk::VerifiedAttestation, DeploymentError>) -> String {
    match result {
        Err(DeploymentError::Evidence { reason }) => reason,
        other => panic!("expected an evidence refusal, got {other:?}"),
    }
}

#[test]
fn a_genuine_response_verifies_history_cas_and_coordinator() {
    let response = genuine();
    let verified = validate(&response).unwrap();
    let expected = ManifestDocument::parse(response.manifests[0].clone()).unwrap();
    verified.deployment.check_latest_is(&expected).unwrap();
    assert_eq!(
        verified.deployment.latest_transition_hash,
        latest_transition_hash(&response.manifests)
    );
    assert_eq!(verified.root_ca, response.root_ca);
    assert_eq!(verified.mesh_ca, response.mesh_ca);
    assert_eq!(
        verified.coordinator.host_data,
        coordinator_workload().host_data()
    );
    assert_eq!(verified.policies.len(), 2);
}

#[test]
fn policies_no_manifest_references_are_dropped() {
    let mut response = genuine();
    response.policies.push(b"# not referenced\n".to_vec());
    let verified = validate(&response).unwrap();
    assert!(!verified.policies.contains(&b"# not referenced\n".to_vec()));
    assert_eq!(verified.policies.len(), 2);
}

#[test]
fn another_nonce_is_refused() {
    let response = genuine();
    let body = serde_json::to_vec(&response).unwrap();
    let reason = evidence_reason(validate_attestation(&[0xa5; 32], &body, now()));
    assert!(reason.contains("report data"), "{reason}");
}

#[test]
fn a_changed_history_is_refused() {
    let mut response = genuine();
    let mut extended = response.manifests.clone();
    extended.push(manifest(&[Workload::new("web"), Workload::new("db")], None));
    response.manifests = extended;
    response.policies = policies(&[Workload::new("web"), Workload::new("db")]);
    let reason = evidence_reason(validate(&response));
    assert!(reason.contains("report data"), "{reason}");
}

#[test]
fn changed_cas_are_refused() {
    let mut response = genuine();
    response.mesh_ca = pem_certificate();
    assert!(evidence_reason(validate(&response)).contains("report data"));
    let mut response = genuine();
    response.root_ca = pem_certificate();
    assert!(evidence_reason(validate(&response)).contains("report data"));
}

#[test]
fn a_coordinator_with_another_host_data_is_refused() {
    let response = response_from(
        Workload::new("web").host_data(),
        &NONCE,
        vec![manifest(&workloads(), None)],
        policies(&workloads()),
    );
    let reason = evidence_reason(validate(&response));
    assert!(reason.to_lowercase().contains("host_data"), "{reason}");
}

#[test]
fn an_unsupported_evidence_type_is_refused() {
    let mut response = genuine();
    response.attestation_type = vec![1, 3, 9901, 2, 2];
    let reason = evidence_reason(validate(&response));
    assert!(reason.contains("1.3.9901.2.2"), "{reason}");
}

/// The CRL is required by default: evidence without one (a host that left it out) is refused,
/// though everything else about it is genuine.
#[test]
fn evidence_without_a_crl_is_refused() {
    let (_, env) = environment();
    let guest = env
        .guest([0x3c; 64], coordinator_workload().host_data())
        .unwrap();
    let without_crl =
        contrast_sim::SimulatedIssuer::new(std::sync::Arc::clone(env.platform()), guest);
    let mut response = genuine();
    let report_data = attest_report_data(
        &NONCE,
        &latest_transition_hash(&response.manifests),
        &response.root_ca,
        &response.mesh_ca,
    );
    response.raw_attestation_doc =
        contrast_attest::Issuer::issue(&without_crl, &report_data).unwrap();
    let reason = evidence_reason(validate(&response));
    assert!(reason.contains("CRL"), "{reason}");
}

#[test]
fn a_corrupted_evidence_is_refused() {
    let mut response = genuine();
    let last = response.raw_attestation_doc.len() / 2;
    response.raw_attestation_doc[last] ^= 0x01;
    evidence_reason(validate(&response));
}

#[test]
fn malformed_and_empty_responses_are_refused() {
    assert!(matches!(
        validate_attestation(&NONCE, b"{\"version\":", now()),
        Err(DeploymentError::MalformedAttestResponse { .. })
    ));
    let mut response = genuine();
    response.manifests.clear();
    assert_eq!(
        validate(&response).unwrap_err(),
        DeploymentError::EmptyHistory
    );
    let mut response = genuine();
    response.attestation_type = vec![7];
    assert!(matches!(
        validate(&response),
        Err(DeploymentError::MalformedAttestResponse { .. })
    ));
}

#[test]
fn a_missing_policy_is_refused_after_the_evidence_checks_out() {
    let mut response = genuine();
    response.policies.pop();
    assert!(matches!(
        validate(&response),
        Err(DeploymentError::MissingPolicy { .. })
    ));
}

#[test]
fn the_newest_manifest_must_be_the_expected_one() {
    let verified = validate(&genuine()).unwrap();
    let other = ManifestDocument::parse(manifest(&[Workload::new("other")], None)).unwrap();
    assert!(matches!(
        verified.deployment.check_latest_is(&other),
        Err(DeploymentError::UnexpectedManifest { .. })
    ));
}

#[test]
fn stale_evidence_is_refused_later() {
    let response = genuine();
    let body = serde_json::to_vec(&response).unwrap();
    // Far in the future, the simulated VCEK is no longer valid.
    let later = UnixTime::from(SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600));
    evidence_reason(validate_attestation(&NONCE, &body, later));
}
