//! The Coordinator's core on a memory store with a fixed clock and seeded randomness: every
//! transition of the state machine, every authorisation rule with its specific error and an
//! unchanged store, the mesh rules, peer recovery and interleavings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use contrast_coordinator::{
    Error, HeadObservation, ManifestSet, MeshClient, PeerRecovery, PeerRecoveryError, Phase, State,
    Tampering,
};
use contrast_core::api::ErrorCode;
use contrast_core::owner::{AuthorizationError, WorkloadOwnerPrivateKey, next_transition_hash};
use contrast_store::{Key, MemoryStore, Store};
use support::{
    Deployment, MEASUREMENT, TestPeers, Workload, YieldingStore, bytes, coordinator_issuer, core,
    core_over, handshake, snapshot,
};

fn phase_name(phase: &Phase) -> &'static str {
    phase.name()
}

/// A Coordinator with its first manifest set.
async fn initialized() -> (
    MemoryStore,
    TestPeers,
    support::Core,
    Deployment,
    ManifestSet,
) {
    let store = MemoryStore::new();
    let peers = TestPeers::default();
    let core = core(&store, &peers, 1);
    let deployment = Deployment::new();
    let set = core
        .set_manifest(deployment.request(&deployment.manifest()), None)
        .await
        .unwrap();
    (store, peers, core, deployment, set)
}

/// The subject key identifier of a CA certificate.
fn skid(cert: &contrast_ca::CaCertificate) -> Vec<u8> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(&cert.der).unwrap();
    let (_, skid) = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    skid.0.as_bytes().to_vec()
}

/// The seed and salt `state` holds, as it hands them to a recovering peer.
fn seed_of(
    core: &support::Core,
    state: &State,
    deployment: &Deployment,
) -> contrast_core::api::MeshRecoverResponse {
    let peer = handshake(state, &deployment.workloads[0], MEASUREMENT).unwrap();
    core.peer_recovery_answer(state, MeshClient::Verified(&peer))
        .unwrap()
}

/// The seed of a first set, from its seed shares.
fn seed_engine_seed(deployment: &Deployment, set: &ManifestSet) -> zeroize::Zeroizing<Vec<u8>> {
    deployment
        .recover_request(set.seed_shares.as_ref().unwrap(), false)
        .seed
}

/// The seed engine of a first set, from its seed shares.
fn seed_engine(deployment: &Deployment, set: &ManifestSet) -> contrast_core::seed::SeedEngine {
    let request = deployment.recover_request(set.seed_shares.as_ref().unwrap(), false);
    contrast_core::seed::SeedEngine::new(&request.seed, &request.salt).unwrap()
}

/// The serial number of a PEM certificate.
fn serial(pem: &str) -> Vec<u8> {
    use x509_cert::der::DecodePem;
    x509_cert::Certificate::from_pem(pem)
        .unwrap()
        .tbs_certificate
        .serial_number
        .as_bytes()
        .to_vec()
}

fn assert_code(error: &Error, code: ErrorCode) {
    assert_eq!(error.code(), code, "{error}");
}

// ---- the state machine ----------------------------------------------------------------------

#[tokio::test]
async fn an_empty_store_is_uninitialized_and_refuses_reads_and_recovery() {
    let store = MemoryStore::new();
    let core = core(&store, &TestPeers::default(), 1);
    assert_eq!(phase_name(&core.phase().await.unwrap()), "uninitialized");
    assert!(core.active().is_none());
    assert!(!core.needs_recovery().await.unwrap());
    let error = core.manifests().await.unwrap_err();
    assert!(matches!(error, Error::NoManifest), "{error}");
    assert_code(&error, ErrorCode::NoManifest);
    let error = core.recoverable().await.unwrap_err();
    assert!(matches!(error, Error::NothingToRecover), "{error}");
    assert_code(&error, ErrorCode::NoManifest);
    // A workload that connects now is told why it gets nothing.
    let error = core.mesh_refusal_without_state().await;
    assert!(matches!(error, Error::NoManifest), "{error}");
    assert!(snapshot(&store).await.is_empty());
}

#[tokio::test]
async fn the_first_set_makes_the_coordinator_active_with_seed_shares() {
    let (store, _, core, deployment, set) = initialized().await;
    assert_eq!(set.state.generation(), 1);
    let Phase::Active(active) = core.phase().await.unwrap() else {
        panic!("not active");
    };
    assert!(Arc::ptr_eq(&active, &set.state));
    assert!(core.active().is_some());
    let shares = set.seed_shares.expect("the first set returns seed shares");
    assert_eq!(shares.seed_shares.len(), 1);
    // The share decrypts to the seed the state derives from.
    let request = deployment.recover_request(&shares, false);
    let held = seed_of(&core, &set.state, &deployment);
    assert_eq!(bytes(&request.seed), bytes(&held.seed));
    assert_eq!(request.salt, held.salt);
    // The signed head is in the store and is the state's.
    let head = store.get(&Key::latest_transition()).await.unwrap().unwrap();
    assert_eq!(head, set.state.latest().encode());
    assert_eq!(set.state.history().manifests.len(), 1);
    // Only referenced policies are served (the request also carried "extra").
    assert_eq!(set.state.history().policies.len(), 3);
}

#[tokio::test]
async fn an_update_by_an_owner_key_rotates_the_mesh_ca_and_keeps_the_root() {
    let (_, _, core, deployment, first) = initialized().await;
    let mut manifest = deployment.manifest();
    manifest
        .policies
        .remove(&hex::encode(deployment.workloads[2].host_data()));
    let second = core
        .set_manifest(
            deployment.request(&manifest),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    assert_eq!(second.state.generation(), 2);
    assert!(
        second.seed_shares.is_none(),
        "only the first set returns shares"
    );
    // The root keeps its key (the certificate is signed anew with a fresh ECDSA nonce).
    assert_eq!(skid(second.state.root_ca()), skid(first.state.root_ca()));
    assert_ne!(skid(second.state.mesh_ca()), skid(first.state.mesh_ca()));
    assert_eq!(
        bytes(&seed_of(&core, &second.state, &deployment).seed),
        bytes(&seed_engine_seed(&deployment, &first))
    );
    assert_eq!(second.state.history().manifests.len(), 2);
    let served = core.manifests().await.unwrap();
    assert!(Arc::ptr_eq(&served, &second.state));
}

#[tokio::test]
async fn an_update_by_a_detached_signature_needs_no_client_key() {
    let (_, _, core, deployment, first) = initialized().await;
    let manifest = deployment.manifest_for(&deployment.workloads[..2]);
    let mut request = deployment.request(&manifest);
    let next = next_transition_hash(
        &contrast_core::sha256(&request.manifest),
        &first.state.latest().transition_hash,
    );
    request.signature = Some(deployment.owner.sign_transition(&next).unwrap());
    let second = core.set_manifest(request, None).await.unwrap();
    assert_eq!(second.state.generation(), 2);
}

#[tokio::test]
async fn a_restarted_coordinator_needs_recovery_and_refuses_everything_else() {
    let (store, peers, _, deployment, _) = initialized().await;
    let restarted = core(&store, &peers, 2);
    assert_eq!(
        phase_name(&restarted.phase().await.unwrap()),
        "needs-recovery"
    );
    assert!(restarted.needs_recovery().await.unwrap());
    assert!(
        restarted.active().is_none(),
        "no mesh handshake without state"
    );
    let before = snapshot(&store).await;
    let error = restarted
        .set_manifest(
            deployment.request(&deployment.manifest()),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NeedsRecovery), "{error}");
    assert_code(&error, ErrorCode::NeedsRecovery);
    let error = restarted.manifests().await.unwrap_err();
    assert!(matches!(error, Error::NeedsRecovery), "{error}");
    let error = restarted.mesh_refusal_without_state().await;
    assert!(matches!(error, Error::NeedsRecovery), "{error}");
    assert_code(&error, ErrorCode::NeedsRecovery);
    assert_eq!(snapshot(&store).await, before);
}

#[tokio::test]
async fn user_recovery_with_the_seed_restores_the_same_history_and_root() {
    let (store, peers, core1, deployment, set) = initialized().await;
    let shares = set.seed_shares.unwrap();
    let restarted = core(&store, &peers, 2);
    let state = restarted
        .recover(
            deployment.recover_request(&shares, false),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap();
    assert_eq!(phase_name(&restarted.phase().await.unwrap()), "active");
    assert_eq!(state.generation(), 1);
    assert_eq!(state.latest(), set.state.latest());
    assert_eq!(skid(state.root_ca()), skid(set.state.root_ca()));
    // User recovery cannot know the old mesh key: a new mesh CA.
    assert_ne!(skid(state.mesh_ca()), skid(set.state.mesh_ca()));
    assert_eq!(state.history().manifests, set.state.history().manifests);
    assert_eq!(state.history().policies, set.state.history().policies);
    // Recovery of an active Coordinator is refused.
    let error = core1
        .recover(
            deployment.recover_request(&shares, true),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::AlreadyRecovered), "{error}");
    assert_code(&error, ErrorCode::AlreadyRecovered);
}

// ---- authorisation of updates ---------------------------------------------------------------

/// Sets `request` on an initialized Coordinator with `caller`, expecting a refusal; checks the
/// store is unchanged and the state still the first.
async fn refused_update(
    edit: impl FnOnce(&Deployment, &State, &mut contrast_core::api::SetManifestRequest),
    caller: impl FnOnce(&Deployment) -> Option<Vec<u8>>,
) -> Error {
    let (store, _, core, deployment, first) = initialized().await;
    let mut request = deployment.request(&deployment.manifest_for(&deployment.workloads[..2]));
    edit(&deployment, &first.state, &mut request);
    let caller = caller(&deployment);
    let before = snapshot(&store).await;
    let error = core
        .set_manifest(request, caller.as_deref())
        .await
        .unwrap_err();
    assert_eq!(
        snapshot(&store).await,
        before,
        "the store changed after: {error}"
    );
    assert!(Arc::ptr_eq(&core.active().unwrap(), &first.state));
    error
}

#[tokio::test]
async fn an_update_without_key_or_signature_is_refused() {
    let error = refused_update(|_, _, _| {}, |_| None).await;
    assert!(matches!(error, Error::NoOwnerCredential), "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn an_update_by_a_stranger_key_is_refused() {
    let error = refused_update(
        |_, _, _| {},
        |_| {
            let stranger = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng).unwrap();
            Some(stranger.public_key().pkix_der().to_vec())
        },
    )
    .await;
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::NotAnOwner { .. })
        ),
        "{error}"
    );
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn an_update_by_a_key_that_is_no_owner_key_is_refused() {
    let error = refused_update(|_, _, _| {}, |d| Some(d.seedshare_spki.clone())).await;
    assert!(matches!(error, Error::NotAnOwnerKey(_)), "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn an_update_signed_by_a_stranger_is_an_invalid_signature() {
    let error = refused_update(
        |_, state, request| {
            let stranger = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng).unwrap();
            let next = next_transition_hash(
                &contrast_core::sha256(&request.manifest),
                &state.latest().transition_hash,
            );
            request.signature = Some(stranger.sign_transition(&next).unwrap());
        },
        |_| None,
    )
    .await;
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::BadSignature { .. })
        ),
        "{error}"
    );
    assert_code(&error, ErrorCode::InvalidSignature);
}

#[tokio::test]
async fn an_update_with_a_malformed_signature_is_an_invalid_signature() {
    let error = refused_update(|_, _, r| r.signature = Some(vec![0x30, 0x01]), |_| None).await;
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::MalformedSignature { .. })
        ),
        "{error}"
    );
    assert_code(&error, ErrorCode::InvalidSignature);
}

#[tokio::test]
async fn an_update_signed_for_another_manifest_is_an_invalid_signature() {
    let error = refused_update(
        |d, state, request| {
            let next = next_transition_hash(&[0xee; 32], &state.latest().transition_hash);
            request.signature = Some(d.owner.sign_transition(&next).unwrap());
        },
        |_| None,
    )
    .await;
    assert_code(&error, ErrorCode::InvalidSignature);
}

#[tokio::test]
async fn an_update_changing_the_seed_share_owners_is_refused() {
    let error = refused_update(
        |d, _, request| {
            let mut manifest = d.manifest();
            manifest.seedshare_owner_pub_keys = Some(Vec::new());
            request.manifest = manifest.to_go_json().unwrap();
        },
        |d| Some(d.owner_spki()),
    )
    .await;
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::SeedshareOwnersChanged { .. })
        ),
        "{error}"
    );
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn an_update_on_another_head_than_expected_is_a_conflict() {
    let error = refused_update(
        |_, _, request| request.previous_transition_hash = Some(vec![0xab; 32]),
        |d| Some(d.owner_spki()),
    )
    .await;
    assert!(matches!(error, Error::TransitionMismatch(_)), "{error}");
    assert_code(&error, ErrorCode::ManifestConflict);
}

#[tokio::test]
async fn an_expected_previous_transition_of_the_wrong_length_is_invalid() {
    let error = refused_update(
        |_, _, request| request.previous_transition_hash = Some(vec![0xab; 31]),
        |d| Some(d.owner_spki()),
    )
    .await;
    assert!(
        matches!(error, Error::PreviousTransitionLength { found: 31 }),
        "{error}"
    );
    assert_code(&error, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn an_update_on_the_expected_head_succeeds() {
    let (_, _, core, deployment, first) = initialized().await;
    let mut request = deployment.request(&deployment.manifest_for(&deployment.workloads[..2]));
    request.previous_transition_hash = Some(first.state.latest().transition_hash.to_vec());
    let second = core
        .set_manifest(request, Some(&deployment.owner_spki()))
        .await
        .unwrap();
    assert_eq!(second.state.generation(), 2);
}

#[tokio::test]
async fn a_manifest_that_does_not_parse_is_invalid() {
    let error = refused_update(
        |_, _, request| request.manifest = b"{not json".to_vec(),
        |d| Some(d.owner_spki()),
    )
    .await;
    assert!(matches!(error, Error::ManifestParse(_)), "{error}");
    assert_code(&error, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn a_manifest_that_breaks_a_rule_is_invalid() {
    let error = refused_update(
        |d, _, request| {
            // No coordinator policy.
            let manifest = d.manifest_for(&d.workloads[1..]);
            request.manifest = manifest.to_go_json().unwrap();
        },
        |d| Some(d.owner_spki()),
    )
    .await;
    assert!(matches!(error, Error::ManifestInvalid(_)), "{error}");
    assert_code(&error, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn a_manifest_whose_policy_was_not_sent_is_invalid() {
    let error = refused_update(
        |_, _, request| request.policies.truncate(1),
        |d| Some(d.owner_spki()),
    )
    .await;
    assert!(matches!(error, Error::MissingPolicy(_)), "{error}");
    assert_code(&error, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn an_immutable_manifest_refuses_every_update() {
    let store = MemoryStore::new();
    let core = core(&store, &TestPeers::default(), 1);
    let deployment = Deployment::new();
    let mut manifest = deployment.manifest();
    manifest.workload_owner_pub_keys = None;
    core.set_manifest(deployment.request(&manifest), None)
        .await
        .unwrap();
    let before = snapshot(&store).await;
    let error = core
        .set_manifest(
            deployment.request(&manifest),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::UpdatesDisabled)
        ),
        "{error}"
    );
    assert_eq!(snapshot(&store).await, before);
}

#[tokio::test]
async fn the_first_set_needs_no_credential_but_a_valid_manifest() {
    let store = MemoryStore::new();
    let core = core(&store, &TestPeers::default(), 1);
    let deployment = Deployment::new();
    let mut request = deployment.request(&deployment.manifest());
    request.manifest = b"[]".to_vec();
    let error = core.set_manifest(request, None).await.unwrap_err();
    assert!(matches!(error, Error::ManifestParse(_)), "{error}");
    assert!(snapshot(&store).await.is_empty());
    assert_eq!(phase_name(&core.phase().await.unwrap()), "uninitialized");
}

// ---- authorisation of user recovery ---------------------------------------------------------

/// A restarted Coordinator refusing `request` from `caller`, with the store unchanged and the
/// phase still needs-recovery.
async fn refused_recovery(
    edit: impl FnOnce(&mut contrast_core::api::RecoverRequest),
    caller: impl FnOnce(&Deployment) -> Option<Vec<u8>>,
    peers_ready: &[&str],
) -> Error {
    let (store, peers, _, deployment, set) = initialized().await;
    let restarted = core(&store, &peers, 2);
    peers.set(peers_ready);
    let mut request = deployment.recover_request(set.seed_shares.as_ref().unwrap(), false);
    edit(&mut request);
    let caller = caller(&deployment);
    let before = snapshot(&store).await;
    let error = restarted
        .recover(request, caller.as_deref())
        .await
        .unwrap_err();
    assert_eq!(
        snapshot(&store).await,
        before,
        "the store changed after: {error}"
    );
    assert_eq!(
        phase_name(&restarted.phase().await.unwrap()),
        "needs-recovery"
    );
    error
}

#[tokio::test]
async fn recovery_without_a_client_key_is_refused() {
    let error = refused_recovery(|_| {}, |_| None, &[]).await;
    assert!(matches!(error, Error::NoRecoveryKey), "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn recovery_with_an_ec_key_is_refused() {
    let error = refused_recovery(|_| {}, |d| Some(d.owner_spki()), &[]).await;
    assert!(matches!(error, Error::RecoveryKeyNotRsa { .. }), "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn recovery_by_an_rsa_key_that_is_no_seed_share_owner_is_refused() {
    let error = refused_recovery(
        |_| {},
        |_| {
            let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
                .unwrap();
            let key =
                contrast_core::owner::SeedshareOwnerPrivateKey::from_pkcs8_der(pkcs8.as_ref())
                    .unwrap();
            Some(key.public_key().to_spki_der().unwrap())
        },
        &[],
    )
    .await;
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::RecoveryKeyNotListed { .. })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn recovery_with_another_seed_is_refused() {
    let error = refused_recovery(
        |request| request.seed = zeroize::Zeroizing::new(vec![7; 64]),
        |d| Some(d.seedshare_spki.clone()),
        &[],
    )
    .await;
    assert!(matches!(error, Error::SeedMismatch), "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn recovery_with_a_malformed_salt_is_invalid() {
    let error = refused_recovery(
        |request| request.salt = vec![1; 5],
        |d| Some(d.seedshare_spki.clone()),
        &[],
    )
    .await;
    assert!(matches!(error, Error::SeedOrSalt(_)), "{error}");
    assert_code(&error, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn recovery_is_refused_while_ready_peers_exist_unless_forced() {
    let error = refused_recovery(
        |_| {},
        |d| Some(d.seedshare_spki.clone()),
        &["10.0.0.2:7777"],
    )
    .await;
    assert!(
        matches!(error, Error::ReadyPeers { ref peers } if peers.len() == 1),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("1 recovered peers are available (10.0.0.2:7777)")
    );
    assert_code(&error, ErrorCode::AlreadyRecovered);

    let (store, peers, _, deployment, set) = initialized().await;
    let restarted = core(&store, &peers, 2);
    peers.set(&["10.0.0.2:7777"]);
    restarted
        .recover(
            deployment.recover_request(set.seed_shares.as_ref().unwrap(), true),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap();
}

// ---- the mesh API ---------------------------------------------------------------------------

#[tokio::test]
async fn an_attested_workload_gets_its_certificate_and_secret() {
    let (_, _, core, deployment, set) = initialized().await;
    let frontend = &deployment.workloads[1];
    let peer = handshake(&set.state, frontend, MEASUREMENT).unwrap();
    let issued = core
        .mesh_certificate(&set.state, MeshClient::Verified(&peer))
        .unwrap();
    assert_eq!(issued.common_name, "frontend");
    assert_eq!(issued.host_data, frontend.host_data());
    assert_eq!(issued.mesh_ca_pem, set.state.mesh_ca().pem);
    assert_eq!(issued.root_ca_pem, set.state.root_ca().pem);
    assert_eq!(
        bytes(&issued.workload_secret),
        seed_engine(&deployment, &set)
            .workload_secret("default/frontend")
            .unwrap()
            .as_bytes()
    );
    assert!(
        issued
            .cert_chain_pem
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        issued.cert_chain_pem.matches("BEGIN CERTIFICATE").count(),
        2
    );
}

#[tokio::test]
async fn a_workload_whose_host_data_is_not_in_the_manifest_is_refused() {
    let (_, _, core, _, set) = initialized().await;
    let stranger = Workload::new("stranger");
    let peer = handshake(&set.state, &stranger, MEASUREMENT).unwrap();
    let error = core
        .mesh_certificate(&set.state, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(
        matches!(error, Error::UnknownHostData { host_data } if host_data == stranger.host_data())
    );
    assert_eq!(error.reason(), "unknown_host_data");
    assert!(error.to_string().contains("not found in manifest"));
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn a_workload_refused_in_the_handshake_is_told_why() {
    let (_, _, core, deployment, set) = initialized().await;
    let rejection =
        Arc::new(handshake(&set.state, &deployment.workloads[1], [0x22; 48]).unwrap_err());
    let error = core
        .mesh_certificate(
            &set.state,
            MeshClient::from_handshake(None, Some(&rejection)),
        )
        .unwrap_err();
    assert!(matches!(error, Error::AttestationRefused(_)), "{error}");
    assert_eq!(error.reason(), "reference_values");
    assert!(error.to_string().starts_with("attestation refused: "));
    assert!(
        error.to_string().to_lowercase().contains("measurement"),
        "{error}"
    );

    // A certificate made for another connection's nonce: a replay.
    let replayed = Arc::new(
        support::replayed_handshake(&set.state, &deployment.workloads[1], MEASUREMENT, [1; 32])
            .unwrap_err(),
    );
    let error = core
        .mesh_certificate(&set.state, MeshClient::Refused(&replayed))
        .unwrap_err();
    assert_eq!(error.reason(), "report_data", "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn a_client_without_certificate_or_attestation_is_refused() {
    let (_, _, core, deployment, set) = initialized().await;
    let error = core
        .mesh_certificate(&set.state, MeshClient::from_handshake(None, None))
        .unwrap_err();
    assert!(matches!(error, Error::NoClientCertificate), "{error}");
    assert_eq!(error.reason(), "no_certificate");

    let mut peer = handshake(&set.state, &deployment.workloads[1], MEASUREMENT).unwrap();
    peer.attestation = None;
    let error = core
        .mesh_certificate(&set.state, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(matches!(error, Error::NoAttestation), "{error}");
    assert_eq!(error.reason(), "no_attestation");
}

#[tokio::test]
async fn only_a_coordinator_role_gets_the_state_for_peer_recovery() {
    let (_, _, core, deployment, set) = initialized().await;
    let frontend = handshake(&set.state, &deployment.workloads[1], MEASUREMENT).unwrap();
    let error = core
        .peer_recovery_answer(&set.state, MeshClient::Verified(&frontend))
        .unwrap_err();
    assert!(matches!(error, Error::RoleNotAllowed { .. }), "{error}");
    assert_eq!(error.reason(), "not_coordinator");
    assert!(error.to_string().contains("not allowed to recover"));

    let coordinator = handshake(&set.state, &deployment.workloads[0], MEASUREMENT).unwrap();
    let answer = core
        .peer_recovery_answer(&set.state, MeshClient::Verified(&coordinator))
        .unwrap();
    let shares = deployment.recover_request(set.seed_shares.as_ref().unwrap(), false);
    assert_eq!(bytes(&answer.seed), bytes(&shares.seed));
    assert_eq!(answer.salt, shares.salt);
    assert_eq!(answer.latest_manifest, set.state.manifest().raw());
    // The mesh CA key is the one the mesh CA certificate certifies.
    let mesh_key =
        contrast_ca::MeshCaKey::from_pem(std::str::from_utf8(&answer.mesh_ca_key).unwrap())
            .unwrap();
    assert_eq!(
        mesh_key.subject_key_identifier().to_vec(),
        skid(set.state.mesh_ca())
    );
}

#[tokio::test]
async fn a_mesh_request_across_an_update_is_decided_under_the_manifest_in_force() {
    // Issue 19 item 3 (reproduced first): a connection accepted under the first manifest kept
    // getting certificates and its secret after an update removed its policy.
    let (_, _, core, deployment, _) = initialized().await;
    // The connection was accepted under the first manifest…
    let accepted = core.active().unwrap();
    let backend = &deployment.workloads[2];
    let peer = handshake(&accepted, backend, MEASUREMENT).unwrap();
    core.mesh_certificate(&accepted, MeshClient::Verified(&peer))
        .unwrap();
    // …then an update removes the backend: the open connection gets nothing more.
    let second = core
        .set_manifest(
            deployment.request(&deployment.manifest_for(&deployment.workloads[..2])),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    let error = core
        .mesh_certificate(&accepted, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::ConnectionOutdated {
                accepted: 1,
                current: Some(2)
            }
        ),
        "{error}"
    );
    assert_code(&error, ErrorCode::ManifestConflict);
    let error = core
        .peer_recovery_answer(&accepted, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(matches!(error, Error::ConnectionOutdated { .. }), "{error}");
    // A connection accepted now is under the new manifest, which refuses the backend.
    let now = core.active().unwrap();
    assert!(Arc::ptr_eq(&now, &second.state));
    let peer = handshake(&now, backend, MEASUREMENT).unwrap();
    let error = core
        .mesh_certificate(&now, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(matches!(error, Error::UnknownHostData { .. }), "{error}");
}

#[tokio::test]
async fn a_stale_or_tampered_state_serves_no_mesh_request() {
    let (store, first, second, deployment, _) = two_replicas().await;
    let accepted = second.active().unwrap();
    let peer = handshake(&accepted, &deployment.workloads[0], MEASUREMENT).unwrap();
    first
        .set_manifest(
            deployment.request(&deployment.manifest_for(&deployment.workloads[..2])),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    assert_eq!(second.observe_head().await.unwrap(), HeadObservation::Stale);
    let error = second
        .mesh_certificate(&accepted, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(matches!(error, Error::NeedsRecovery), "{error}");

    let accepted = first.active().unwrap();
    let peer = handshake(&accepted, &deployment.workloads[0], MEASUREMENT).unwrap();
    replace_head(&store, b"garbage").await;
    assert!(matches!(
        first.observe_head().await.unwrap(),
        HeadObservation::Tampered(_)
    ));
    let error = first
        .mesh_certificate(&accepted, MeshClient::Verified(&peer))
        .unwrap_err();
    assert!(matches!(error, Error::Tampered(_)), "{error}");
}

// ---- staleness and peer recovery ------------------------------------------------------------

/// Two replicas on one store, both active at the first manifest (the second recovered from the
/// first).
async fn two_replicas() -> (
    MemoryStore,
    support::Core,
    support::Core,
    Deployment,
    ManifestSet,
) {
    let (store, _, first, deployment, set) = initialized().await;
    let second = core(&store, &TestPeers::default(), 2);
    let recovered = second
        .recover_from_peer(
            async |manifest: &contrast_core::manifest::ManifestDocument| {
                assert_eq!(manifest.raw(), set.state.manifest().raw());
                let state = first.active().unwrap();
                let peer = handshake(&state, &deployment.workloads[0], MEASUREMENT).unwrap();
                first
                    .peer_recovery_answer(&state, MeshClient::Verified(&peer))
                    .map_err(|e| std::io::Error::other(e.to_string()))
            },
        )
        .await
        .unwrap();
    let PeerRecovery::Recovered(state) = recovered else {
        panic!("not recovered");
    };
    // Peer recovery keeps the mesh CA key: certificates stay valid.
    assert_eq!(skid(state.mesh_ca()), skid(set.state.mesh_ca()));
    assert_eq!(skid(state.root_ca()), skid(set.state.root_ca()));
    (store, first, second, deployment, set)
}

#[tokio::test]
async fn a_replica_goes_stale_when_another_moves_the_head_and_recovers_from_it() {
    let (store, first, second, deployment, _) = two_replicas().await;
    let update = first
        .set_manifest(
            deployment.request(&deployment.manifest_for(&deployment.workloads[..2])),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    // The writer's own head does not make it stale.
    assert_eq!(
        first.observe_head().await.unwrap(),
        HeadObservation::Current
    );
    // The other replica sees a head signed with its own key that it does not know.
    assert_eq!(second.observe_head().await.unwrap(), HeadObservation::Stale);
    assert_eq!(phase_name(&second.phase().await.unwrap()), "stale");
    assert!(
        second.active().is_none(),
        "a stale replica takes no mesh connections"
    );
    assert!(second.needs_recovery().await.unwrap());
    // An update while stale is refused, and changes nothing.
    let before = snapshot(&store).await;
    let error = second
        .set_manifest(
            deployment.request(&deployment.manifest()),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NeedsRecovery), "{error}");
    assert!(matches!(
        second.manifests().await.unwrap_err(),
        Error::NeedsRecovery
    ));
    assert_eq!(snapshot(&store).await, before);
    // Peer recovery brings it to the writer's state.
    let recovered = second
        .recover_from_peer(async |_: &contrast_core::manifest::ManifestDocument| {
            let state = first.active().unwrap();
            let peer = handshake(&state, &deployment.workloads[0], MEASUREMENT).unwrap();
            first
                .peer_recovery_answer(&state, MeshClient::Verified(&peer))
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .await
        .unwrap();
    let PeerRecovery::Recovered(state) = recovered else {
        panic!("not recovered");
    };
    assert_eq!(state.generation(), 2);
    assert_eq!(state.latest(), update.state.latest());
    assert_eq!(skid(state.mesh_ca()), skid(update.state.mesh_ca()));
    assert_eq!(phase_name(&second.phase().await.unwrap()), "active");
}

/// Copies every key of `from` (blobs and head) over `to`: an attacker with write access to the
/// store replaces its contents with a self-consistent history of its own.
async fn overwrite_store(to: &MemoryStore, from: &MemoryStore) {
    for (name, value) in snapshot(from).await {
        let (kind, name) = name.split_once('/').unwrap();
        if name == "latest" {
            continue;
        }
        to.put(&Key::from_parts(kind, name).unwrap(), &value)
            .await
            .unwrap();
    }
    let head = from.get(&Key::latest_transition()).await.unwrap().unwrap();
    replace_head(to, &head).await;
}

/// Writes `head` as `transitions/latest` (the store moves it only by compare-and-swap).
async fn replace_head(store: &MemoryStore, head: &[u8]) {
    let key = Key::latest_transition();
    let old = store.get(&key).await.unwrap().unwrap();
    store.compare_and_swap(&key, &old, head).await.unwrap();
}

/// Asserts `core` refuses to serve because of `tampering`-like evidence and took no mesh
/// connections, leaving its state's head `held`.
async fn assert_tampered(core: &support::Core, held: &State) {
    let phase = core.phase().await.unwrap();
    assert_eq!(phase_name(&phase), "tampered");
    assert!(
        core.active().is_none(),
        "a tampered Coordinator takes no mesh connections"
    );
    assert!(
        !core.needs_recovery().await.unwrap(),
        "and asks no peer for a seed"
    );
    let error = core.manifests().await.unwrap_err();
    assert!(matches!(error, Error::Tampered(_)), "{error}");
    assert_code(&error, ErrorCode::HistoryTampered);
    let Phase::Tampered(state, _) = phase else {
        panic!("not tampered");
    };
    assert_eq!(state.latest(), held.latest(), "the held state is kept");
}

#[tokio::test]
async fn an_attacker_history_in_the_store_is_tampering_not_staleness() {
    // Reproduces the takeover: the store gets a self-consistent history under another seed,
    // then the attacker recovers the Coordinator with that seed's share.
    let (store, _, core, deployment, first) = initialized().await;
    let attacker_store = MemoryStore::new();
    let attacker = core_over(attacker_store.clone(), &TestPeers::default(), 99);
    // The same manifest bytes give the same transition hash: only the signature tells.
    let attacker_set = attacker
        .set_manifest(deployment.request(&deployment.manifest()), None)
        .await
        .unwrap();
    assert_eq!(
        attacker_set.state.latest().transition_hash,
        first.state.latest().transition_hash
    );
    overwrite_store(&store, &attacker_store).await;

    let observation = core.observe_head().await.unwrap();
    assert!(
        matches!(
            observation,
            HeadObservation::Tampered(Tampering::ForeignHead { head })
                if head == attacker_set.state.latest().transition_hash
        ),
        "{observation:?}"
    );
    assert_tampered(&core, &first.state).await;
    let error = core
        .recover(
            deployment.recover_request(attacker_set.seed_shares.as_ref().unwrap(), true),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tampered(_)), "{error}");
    assert_eq!(
        core.observe_head().await.unwrap(),
        HeadObservation::Tampered(Tampering::ForeignHead {
            head: attacker_set.state.latest().transition_hash
        })
    );

    // Restoring the held head clears it: the Coordinator serves its own state again.
    replace_head(&store, &first.state.latest().encode()).await;
    assert_eq!(core.observe_head().await.unwrap(), HeadObservation::Current);
    assert_eq!(phase_name(&core.phase().await.unwrap()), "active");
    assert_eq!(
        core.manifests().await.unwrap().latest(),
        first.state.latest()
    );
}

#[tokio::test]
async fn a_stale_coordinator_recovers_only_with_its_own_seed() {
    let (store, first, second, deployment, _) = two_replicas().await;
    first
        .set_manifest(
            deployment.request(&deployment.manifest_for(&deployment.workloads[..2])),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    assert_eq!(second.observe_head().await.unwrap(), HeadObservation::Stale);
    let before = snapshot(&store).await;
    // Another deployment's seed share, by a seed-share owner of this one.
    let other = core_over(MemoryStore::new(), &TestPeers::default(), 77)
        .set_manifest(deployment.request(&deployment.manifest()), None)
        .await
        .unwrap();
    let error = second
        .recover(
            deployment.recover_request(other.seed_shares.as_ref().unwrap(), true),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::DifferentSeed), "{error}");
    assert_code(&error, ErrorCode::PermissionDenied);
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(phase_name(&second.phase().await.unwrap()), "stale");
}

#[tokio::test]
async fn a_rollback_to_an_ancestor_is_tampering() {
    let (store, _, core, deployment, first) = initialized().await;
    let old_head = store.get(&Key::latest_transition()).await.unwrap().unwrap();
    assert_eq!(old_head, first.state.latest().encode());
    let update = core
        .set_manifest(
            deployment.request(&deployment.manifest_for(&deployment.workloads[..2])),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    // A late watch event for the old head changes nothing: the store is read anew.
    assert_eq!(core.observe_head().await.unwrap(), HeadObservation::Current);
    // The old, validly signed head written back is a rollback.
    replace_head(&store, &old_head).await;
    let observation = core.observe_head().await.unwrap();
    assert_eq!(
        observation,
        HeadObservation::Tampered(Tampering::Rollback {
            head: first.state.latest().transition_hash,
            held: update.state.latest().transition_hash,
        })
    );
    assert_tampered(&core, &update.state).await;
    let error = core
        .set_manifest(
            deployment.request(&deployment.manifest()),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tampered(_)), "{error}");
}

#[tokio::test]
async fn a_garbage_head_is_tampering_until_repaired() {
    let (store, _, core, _, first) = initialized().await;
    replace_head(&store, b"not a head").await;
    let observation = core.observe_head().await.unwrap();
    assert!(
        matches!(
            observation,
            HeadObservation::Tampered(Tampering::Undecodable { .. })
        ),
        "{observation:?}"
    );
    assert_tampered(&core, &first.state).await;
    replace_head(&store, &first.state.latest().encode()).await;
    assert_eq!(core.observe_head().await.unwrap(), HeadObservation::Current);
    assert!(core.active().is_some());
}

#[tokio::test]
async fn peer_recovery_refuses_an_invalid_stored_manifest() {
    let (store, peers, _, deployment, _) = initialized().await;
    // The stored head's manifest (unverified at this point) is replaced by an invalid one of
    // the same history shape: a history under another seed whose manifest breaks a rule.
    let attacker_store = MemoryStore::new();
    let attacker = contrast_store::HistoryStore::new(attacker_store.clone());
    let mut manifest = deployment.manifest();
    manifest.reference_values.snp.clear();
    let invalid =
        contrast_core::manifest::ManifestDocument::parse(manifest.to_go_json().unwrap()).unwrap();
    assert!(invalid.manifest().validate().is_err());
    let engine = contrast_core::seed::SeedEngine::new(&[7; 64], &[8; 32]).unwrap();
    attacker
        .update(
            None,
            &invalid,
            &deployment.request(&deployment.manifest()).policies,
            None,
            engine.history_signing_key(),
            &mut rand_core::OsRng,
        )
        .await
        .unwrap();
    overwrite_store(&store, &attacker_store).await;
    let restarted = core(&store, &peers, 5);
    let mut asked = false;
    let error = restarted
        .recover_from_peer(async |_: &contrast_core::manifest::ManifestDocument| {
            asked = true;
            Err::<contrast_core::api::MeshRecoverResponse, _>(std::io::Error::other("unreachable"))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, PeerRecoveryError::InvalidStoredManifest(_)),
        "{error}"
    );
    assert!(!asked, "no peer is attested against an invalid manifest");
}

#[tokio::test]
async fn an_active_or_uninitialized_coordinator_does_not_ask_peers() {
    let (_, _, core, _, _) = initialized().await;
    let outcome = core
        .recover_from_peer(
            async |_: &contrast_core::manifest::ManifestDocument| -> Result<_, std::io::Error> {
                panic!("asked a peer while active")
            },
        )
        .await
        .unwrap();
    assert!(matches!(outcome, PeerRecovery::NotNeeded));
}

#[tokio::test]
async fn a_peer_serving_another_manifest_is_not_recovered_from() {
    let (store, peers, first, deployment, _) = initialized().await;
    let restarted = core(&store, &peers, 2);
    let error = restarted
        .recover_from_peer(async |_: &contrast_core::manifest::ManifestDocument| {
            let state = first.active().unwrap();
            let peer = handshake(&state, &deployment.workloads[0], MEASUREMENT).unwrap();
            let mut answer = first
                .peer_recovery_answer(&state, MeshClient::Verified(&peer))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            answer.latest_manifest.push(b' ');
            Ok::<_, std::io::Error>(answer)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, PeerRecoveryError::HeadDiffers { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("the peer serves another manifest")
    );
    assert_eq!(
        phase_name(&restarted.phase().await.unwrap()),
        "needs-recovery"
    );
}

#[tokio::test]
async fn a_peer_whose_seed_does_not_verify_the_history_is_not_recovered_from() {
    let (store, peers, first, deployment, _) = initialized().await;
    let restarted = core(&store, &peers, 2);
    let error = restarted
        .recover_from_peer(async |_: &contrast_core::manifest::ManifestDocument| {
            let state = first.active().unwrap();
            let peer = handshake(&state, &deployment.workloads[0], MEASUREMENT).unwrap();
            let mut answer = first
                .peer_recovery_answer(&state, MeshClient::Verified(&peer))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            answer.seed = zeroize::Zeroizing::new(vec![3; 64]);
            Ok::<_, std::io::Error>(answer)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, PeerRecoveryError::Recovery(Error::SeedMismatch)),
        "{error}"
    );
    let error = restarted
        .recover_from_peer(async |_: &contrast_core::manifest::ManifestDocument| {
            Err::<contrast_core::api::MeshRecoverResponse, _>(std::io::Error::other("unreachable"))
        })
        .await
        .unwrap_err();
    assert!(matches!(error, PeerRecoveryError::Peer(_)), "{error}");
    assert_eq!(
        phase_name(&restarted.phase().await.unwrap()),
        "needs-recovery"
    );
}

// ---- interleavings --------------------------------------------------------------------------

#[tokio::test]
async fn two_racing_updates_one_wins_the_other_is_a_conflict() {
    // Every store access yields, so the two requests interleave: both start from the first
    // state, both store their blobs, and the head's compare-and-swap decides.
    let store = YieldingStore::default();
    let core = core_over(store.clone(), &TestPeers::default(), 1);
    let deployment = Deployment::new();
    core.set_manifest(deployment.request(&deployment.manifest()), None)
        .await
        .unwrap();
    let spki = deployment.owner_spki();
    let a = deployment.request(&deployment.manifest_for(&deployment.workloads[..2]));
    let mut b = deployment.request(&deployment.manifest());
    b.manifest = {
        let mut manifest = deployment.manifest();
        manifest
            .policies
            .remove(&hex::encode(deployment.workloads[1].host_data()));
        manifest.to_go_json().unwrap()
    };
    let (a, b) = tokio::join!(
        core.set_manifest(a, Some(&spki)),
        core.set_manifest(b, Some(&spki))
    );
    let (winner, loser) = match (a, b) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
        (a, b) => panic!("expected one winner and one conflict: {a:?}; {b:?}"),
    };
    assert!(matches!(loser, Error::Conflict), "{loser}");
    assert_code(&loser, ErrorCode::ManifestConflict);
    assert_eq!(winner.state.generation(), 2);
    let head = store
        .0
        .get(&Key::latest_transition())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head, winner.state.latest().encode());
    assert!(Arc::ptr_eq(&core.active().unwrap(), &winner.state));
    // The loser's update left no head behind; the winner's state serves.
    assert_eq!(core.manifests().await.unwrap().generation(), 2);
}

#[tokio::test]
async fn two_racing_recoveries_one_wins_the_other_is_told_the_state_was_replaced() {
    let (store, peers, _, deployment, set) = initialized().await;
    let restarted = core_over(YieldingStore(store), &peers, 2);
    let shares = set.seed_shares.unwrap();
    let key = deployment.seedshare_spki.clone();
    let (a, b) = tokio::join!(
        restarted.recover(deployment.recover_request(&shares, false), Some(&key)),
        restarted.recover(deployment.recover_request(&shares, false), Some(&key)),
    );
    let (winner, loser) = match (a, b) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
        (a, b) => panic!("expected one winner and one refusal: {a:?}; {b:?}"),
    };
    assert!(matches!(loser, Error::Replaced), "{loser}");
    assert_code(&loser, ErrorCode::ManifestConflict);
    assert!(Arc::ptr_eq(&restarted.active().unwrap(), &winner));
}

// ---- evidence, and the environment passed in ------------------------------------------------

#[tokio::test]
async fn evidence_binds_the_nonce_the_head_and_the_cas() {
    let (_, _, core, _, set) = initialized().await;
    let issuer = coordinator_issuer();
    let nonce = [5u8; 32];
    let state = core.manifests().await.unwrap();
    let evidence = core.attest(&state, &nonce, &issuer).unwrap();
    assert_eq!(
        evidence.report_data,
        contrast_core::api::attest_report_data(
            &nonce,
            &set.state.latest().transition_hash,
            set.state.root_ca().pem.as_bytes(),
            set.state.mesh_ca().pem.as_bytes(),
        )
    );
    let oid: Vec<u64> = contrast_attest::atls::Issuer::oid(&issuer)
        .arcs()
        .map(u64::from)
        .collect();
    assert_eq!(evidence.attestation_type, oid);
    assert!(!evidence.document.is_empty());
}

#[tokio::test]
async fn the_clock_and_the_randomness_are_the_ones_passed_in() {
    // Same seeded entropy, same clock: the same seed, CA and head, byte for byte.
    let deployment = Deployment::new();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let store = MemoryStore::new();
        let core = core(&store, &TestPeers::default(), 42);
        let set = core
            .set_manifest(deployment.request(&deployment.manifest()), None)
            .await
            .unwrap();
        // Certificate signatures draw their ECDSA nonces from aws-lc's generator; seed, keys,
        // serials and head come from what was passed in.
        outcomes.push((
            bytes(&seed_engine_seed(&deployment, &set)),
            skid(set.state.root_ca()),
            skid(set.state.mesh_ca()),
            serial(&set.state.root_ca().pem),
            set.state.latest().transition_hash,
        ));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let store = MemoryStore::new();
    let other = core(&store, &TestPeers::default(), 43)
        .set_manifest(deployment.request(&deployment.manifest()), None)
        .await
        .unwrap();
    assert_ne!(bytes(&seed_engine_seed(&deployment, &other)), outcomes[0].0);
}

/// A store that lost some keys (deleted by an operator or an attacker).
struct HidingStore {
    inner: MemoryStore,
    hidden: Vec<Key>,
}

impl Store for HidingStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, contrast_store::StoreError> {
        if self.hidden.contains(key) {
            return Ok(None);
        }
        self.inner.get(key).await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), contrast_store::StoreError> {
        self.inner.put(key, value).await
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), contrast_store::StoreError> {
        self.inner.compare_and_swap(key, old, new).await
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, contrast_store::StoreError> {
        self.inner.list(kind).await
    }

    async fn watch(&self, key: &Key) -> Result<contrast_store::Watch, contrast_store::StoreError> {
        self.inner.watch(key).await
    }
}

#[tokio::test]
async fn a_deleted_policy_of_an_old_manifest_does_not_block_recovery() {
    let (store, peers, core1, deployment, set) = initialized().await;
    let dropped = deployment.workloads.last().unwrap().clone();
    let kept = &deployment.workloads[..deployment.workloads.len() - 1];
    core1
        .set_manifest(
            deployment.request(&deployment.manifest_for(kept)),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    let policy_key = |workload: &Workload| {
        Key::blob(
            contrast_core::history::BlobKind::Policy,
            &workload.host_data(),
        )
    };
    let shares = set.seed_shares.unwrap();

    // Only the first manifest referenced `dropped`'s policy: its loss costs nothing.
    let restarted = core_over(
        HidingStore {
            inner: store.clone(),
            hidden: vec![policy_key(&dropped)],
        },
        &peers,
        2,
    );
    let state = restarted
        .recover(
            deployment.recover_request(&shares, false),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap();
    assert_eq!(state.generation(), 2);
    assert!(
        !state.history().policies.contains_key(&dropped.host_data()),
        "a missing policy is not served"
    );
    assert!(state.history().policies.contains_key(&kept[0].host_data()));

    // A policy of the manifest in force is needed.
    let restarted = core_over(
        HidingStore {
            inner: store.clone(),
            hidden: vec![policy_key(&kept[0])],
        },
        &peers,
        3,
    );
    let error = restarted
        .recover(
            deployment.recover_request(&shares, false),
            Some(&deployment.seedshare_spki),
        )
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&hex::encode(kept[0].host_data())),
        "{error}"
    );
    assert_eq!(
        phase_name(&restarted.phase().await.unwrap()),
        "needs-recovery"
    );
}

#[tokio::test]
async fn a_replayed_first_set_declaring_no_previous_transition_is_a_conflict() {
    // A first set whose answer was lost is retried: declaring "no previous transition" makes
    // the retry a conflict instead of an update that returns no seed shares.
    let store = MemoryStore::new();
    let core = core(&store, &TestPeers::default(), 1);
    let deployment = Deployment::new();
    let mut request = deployment.request(&deployment.manifest());
    request.previous_transition_hash = Some(vec![0; 32]);
    let first = core
        .set_manifest(request.clone(), Some(&deployment.owner_spki()))
        .await
        .unwrap();
    assert!(first.seed_shares.is_some());
    let before = snapshot(&store).await;
    let error = core
        .set_manifest(request, Some(&deployment.owner_spki()))
        .await
        .unwrap_err();
    assert_code(&error, ErrorCode::ManifestConflict);
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        core.manifests().await.unwrap().latest(),
        first.state.latest()
    );
}

#[tokio::test]
async fn user_recovery_refuses_a_history_without_the_transition_the_caller_saw() {
    // Issue 19 item 2: the store's head is rolled back to an older, validly signed one while
    // the Coordinator is down; the seed-share owner, who saw the newer head, recovers.
    let (store, peers, core1, deployment, set) = initialized().await;
    let old_head = store.get(&Key::latest_transition()).await.unwrap().unwrap();
    let update = core1
        .set_manifest(
            deployment.request(&deployment.manifest_for(&deployment.workloads[..2])),
            Some(&deployment.owner_spki()),
        )
        .await
        .unwrap();
    let seen = update.state.latest().transition_hash;
    replace_head(&store, &old_head).await;
    let restarted = core(&store, &peers, 2);
    let shares = set.seed_shares.unwrap();

    let mut request = deployment.recover_request(&shares, false);
    request.history_contains = Some(seen.to_vec());
    let error = restarted
        .recover(request.clone(), Some(&deployment.seedshare_spki))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RolledBack { required, head }
            if required == seen && head == set.state.latest().transition_hash),
        "{error}"
    );
    assert_code(&error, ErrorCode::HistoryTampered);
    assert_eq!(
        phase_name(&restarted.phase().await.unwrap()),
        "needs-recovery"
    );

    request.history_contains = Some(vec![1; 31]);
    let error = restarted
        .recover(request.clone(), Some(&deployment.seedshare_spki))
        .await
        .unwrap_err();
    assert_code(&error, ErrorCode::InvalidArgument);

    // Knowingly accepting the older history, or having seen only it, recovers.
    request.history_contains = Some(set.state.latest().transition_hash.to_vec());
    let state = restarted
        .recover(request, Some(&deployment.seedshare_spki))
        .await
        .unwrap();
    assert_eq!(state.generation(), 1);
}

// ---- admission of manifest updates before their request is read ----------------------------

/// A Coordinator whose manifest in force authorises updates by key digest only (upstream's old
/// schema): no detached signature can authorise an update.
async fn initialized_with_key_digests_only() -> (support::Core, Deployment) {
    let store = MemoryStore::new();
    let core = core(&store, &TestPeers::default(), 1);
    let deployment = Deployment::new();
    let mut manifest = deployment.manifest();
    manifest.workload_owner_pub_keys = None;
    manifest.workload_owner_key_digests =
        Some(vec![hex::encode(deployment.owner.public_key().digest())]);
    core.set_manifest(deployment.request(&manifest), None)
        .await
        .unwrap();
    (core, deployment)
}

#[tokio::test]
async fn a_caller_no_signature_can_authorise_is_refused_before_its_request_is_read() {
    let (core, deployment) = initialized_with_key_digests_only().await;
    let stranger = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng).unwrap();
    let stranger_spki = stranger.public_key().pkix_der().to_vec();
    // The same refusals set_manifest answers for these callers.
    for (caller, expected) in [
        (None, "NoOwnerCredential"),
        (Some(stranger_spki.as_slice()), "NotAnOwner"),
        (Some(deployment.seedshare_spki.as_slice()), "NotAnOwnerKey"),
    ] {
        let admitted = core.admit_update(caller).await.unwrap_err();
        let set = core
            .set_manifest(deployment.request(&deployment.manifest()), caller)
            .await
            .unwrap_err();
        assert!(format!("{admitted:?}").contains(expected), "{admitted:?}");
        assert_eq!(admitted.to_string(), set.to_string());
        assert_eq!(admitted.code(), set.code());
        assert_code(&admitted, ErrorCode::PermissionDenied);
    }
    // The owner's key is admitted, by key.
    let admission = core
        .admit_update(Some(&deployment.owner_spki()))
        .await
        .unwrap();
    assert!(admission.by_owner_key());
}

#[tokio::test]
async fn a_caller_a_signature_may_authorise_is_admitted_to_be_decided_on_its_request() {
    // The manifest lists owner public keys (as `contrast generate` writes it): a request
    // without a key may carry a detached signature, so it must be read.
    let (_, _, core, deployment, _) = initialized().await;
    let admission = core.admit_update(None).await.unwrap();
    assert!(!admission.by_owner_key());
    drop(admission);
    // An immutable manifest (no owner keys at all) refuses even the former owner's key.
    let store = MemoryStore::new();
    let immutable = support::core(&store, &TestPeers::default(), 1);
    let mut manifest = deployment.manifest();
    manifest.workload_owner_pub_keys = None;
    immutable
        .set_manifest(deployment.request(&manifest), None)
        .await
        .unwrap();
    let error = immutable
        .admit_update(Some(&deployment.owner_spki()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unauthorized(AuthorizationError::UpdatesDisabled)
        ),
        "{error}"
    );
}

#[tokio::test]
async fn concurrent_updates_are_bounded_per_kind_of_caller_and_a_slot_frees_when_dropped() {
    let (_, _, core, deployment, _) = initialized().await;
    let anonymous = core.admit_update(None).await.unwrap();
    let error = core.admit_update(None).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::UpdateBusy {
                by_owner_key: false
            }
        ),
        "{error}"
    );
    assert_code(&error, ErrorCode::Busy);
    // A flood without an owner's key does not keep the owner out.
    let owner = core
        .admit_update(Some(&deployment.owner_spki()))
        .await
        .unwrap();
    let error = core
        .admit_update(Some(&deployment.owner_spki()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::UpdateBusy { by_owner_key: true }),
        "{error}"
    );
    drop(anonymous);
    drop(owner);
    let _anonymous = core.admit_update(None).await.unwrap();
    let _owner = core
        .admit_update(Some(&deployment.owner_spki()))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_first_set_is_admitted_without_a_key_and_a_restarted_coordinator_refuses() {
    let store = MemoryStore::new();
    let peers = TestPeers::default();
    let fresh = core(&store, &peers, 1);
    assert!(!fresh.admit_update(None).await.unwrap().by_owner_key());
    let (store, peers, _, deployment, _) = initialized().await;
    let restarted = core(&store, &peers, 2);
    let error = restarted
        .admit_update(Some(&deployment.owner_spki()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NeedsRecovery), "{error}");
}
