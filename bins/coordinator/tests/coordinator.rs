//! End-to-end tests: real `coordinator` and `initializer` processes on loopback, in simulated
//! SEV-SNP mode, with the file store.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use contrast_attest::AtlsClient;
use contrast_core::api::{ErrorCode, RecoverRequest, SetManifestRequest, SetManifestResponse};
use contrast_core::seed::SeedEngine;
use contrast_core::seedshare::SeedShareDocument;
use contrast_sdk::{ClientError, CoordinatorClient};
use contrast_testkit::fixtures::*;
use contrast_testkit::net::*;
use contrast_testkit::process::CoordinatorProcess;
use zeroize::Zeroizing;

fn set_request(manifest: Vec<u8>, workloads: &[Workload]) -> SetManifestRequest {
    SetManifestRequest {
        manifest,
        policies: policies(workloads),
        previous_transition_hash: None,
        signature: None,
    }
}

/// Sets the first manifest (owner keys of [`default_owner_keys`]) for `workloads`.
async fn set_first_manifest(
    coordinator: &CoordinatorProcess,
    workloads: &[Workload],
) -> contrast_sdk::Attested<SetManifestResponse> {
    coordinator
        .user_client(None)
        .set_manifest(&set_request(
            manifest(workloads, default_owner_keys()),
            workloads,
        ))
        .await
        .unwrap()
}

/// Asserts that the call was refused with upstream's gRPC code `grpc` and our error code
/// `code` (from the `contrast-error-code` metadata).
#[track_caller]
fn assert_refused(
    result: &Result<impl std::fmt::Debug, ClientError>,
    grpc: tonic::Code,
    code: ErrorCode,
) {
    match result {
        Err(ClientError::Api {
            status,
            code: found,
            ..
        }) => {
            assert_eq!(*status, grpc, "{result:?}");
            assert_eq!(*found, code, "{result:?}");
        }
        other => panic!("expected a refusal {grpc:?}/{code}, got {other:?}"),
    }
}

fn seed_engine_from_shares(response: &SetManifestResponse) -> SeedEngine {
    let document = SeedShareDocument::from(
        response
            .seed_shares_doc
            .clone()
            .expect("the first set returns seed shares"),
    );
    let seed = document.seed_shares[0]
        .decrypt(&owners().seedshare)
        .unwrap();
    SeedEngine::new(&seed, &document.salt).unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_get_certificates_and_secrets_and_updates_rotate_the_mesh_ca() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    assert_eq!(coordinator.readiness(), 503, "uninitialized is not ready");
    assert!(
        coordinator
            .log_text()
            .contains("waiting for the first manifest: `contrast set` sets it"),
        "{}",
        coordinator.log_text()
    );

    let workloads: Vec<Workload> = ["web", "db", "cache"].map(Workload::new).to_vec();
    // An initializer that starts before the first set is told why it waits, not "handshake
    // eof": the mesh API answers with the Coordinator's state.
    let early = run_initializer(
        &coordinator,
        &workloads[0],
        &dir.path().join("early"),
        &["--max-attempts", "1"],
    );
    let early_log = String::from_utf8_lossy(&early.stderr);
    assert_eq!(early.status.code(), Some(1), "{early_log}");
    assert!(
        early_log.contains("no manifest configured") && early_log.contains("no_manifest"),
        "{early_log}"
    );
    assert!(!dir.path().join("early/done").exists());

    let first = set_first_manifest(&coordinator, &workloads).await;
    assert!(
        coordinator
            .log_text()
            .contains(r#"from="uninitialized" state="active" generation=1"#),
        "{}",
        coordinator.log_text()
    );
    assert!(
        !coordinator.log_text().contains('\x1b'),
        "colour codes in a log file"
    );
    // The Coordinator attested as the simulated VM with its policy hash.
    let attested = first.peer.attestation.as_ref().unwrap();
    assert_eq!(attested.host_data, coordinator_workload().host_data());
    let engine = seed_engine_from_shares(&first.value);
    coordinator.wait_for("/probe/readiness", 200, Duration::from_secs(5));

    for workload in &workloads {
        let root = dir.path().join(&workload.name);
        let output = run_initializer(&coordinator, workload, &root, &["--max-attempts", "3"]);
        assert!(
            output.status.success(),
            "{}: {}",
            workload.name,
            String::from_utf8_lossy(&output.stderr)
        );
        let tls = root.join("tls-config");
        let chain = read(&tls.join("certChain.pem"));
        // The leaf chains to the mesh CA directly and to the root through the intermediate.
        verify_chain(&chain, &first.value.mesh_ca).unwrap();
        verify_chain(&chain, &first.value.root_ca).unwrap();
        assert_eq!(read(&tls.join("mesh-ca.pem")), first.value.mesh_ca);
        assert_eq!(
            read(&tls.join("coordinator-root-ca.pem")),
            first.value.root_ca
        );
        let secret = engine.workload_secret(&workload.secret_id()).unwrap();
        assert_eq!(
            String::from_utf8(read(&root.join("secrets/workload-secret-seed"))).unwrap(),
            hex::encode(secret.as_bytes())
        );
        assert!(root.join("done").exists());
        #[cfg(unix)]
        {
            assert_eq!(mode(&tls.join("key.pem")), 0o400);
            assert_eq!(mode(&tls.join("certChain.pem")), 0o444);
            assert_eq!(mode(&root.join("secrets/workload-secret-seed")), 0o400);
        }
    }

    // An update by the workload owner rotates the mesh CA and keeps the root.
    let updated = manifest(&workloads[..2], default_owner_keys());
    let second = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&set_request(updated.clone(), &workloads[..2]))
        .await
        .unwrap();
    assert!(second.value.seed_shares_doc.is_none());
    assert_ne!(second.value.mesh_ca, first.value.mesh_ca);
    let root_key = |pem: &[u8]| {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).unwrap();
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        cert.subject_public_key_info().to_vec()
    };
    assert_eq!(
        root_key(&second.value.root_ca),
        root_key(&first.value.root_ca)
    );

    // A certificate from the new generation chains to the old root, not to the old mesh CA.
    let root = dir.path().join("web-2");
    let output = run_initializer(&coordinator, &workloads[0], &root, &["--max-attempts", "3"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let chain = read(&root.join("tls-config/certChain.pem"));
    verify_chain(&chain, &first.value.root_ca).unwrap();
    assert!(verify_chain(&chain, &first.value.mesh_ca).is_err());

    // The removed workload is refused now, with the reason in its log.
    let root = dir.path().join("cache-2");
    let output = run_initializer(&coordinator, &workloads[2], &root, &["--max-attempts", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "policy hash {} not found in manifest",
            workloads[2].host_data_hex()
        )),
        "{stderr}"
    );

    // The history: both manifests, oldest first.
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    assert_eq!(history.value.manifests.len(), 2);
    assert_eq!(history.value.manifests[1], updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initializers_the_manifest_does_not_allow_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &["--metrics"]);
    let workload = Workload::new("web");
    coordinator
        .user_client(None)
        .set_manifest(&set_request(
            manifest(std::slice::from_ref(&workload), default_owner_keys()),
            std::slice::from_ref(&workload),
        ))
        .await
        .unwrap();

    let cases: [(&str, &[&str], &str); 3] = [
        ("debug", &["--sim-debug"], "debug"),
        ("low-tcb", &["--sim-tcb", "1.0.1.1"], "tcb"),
        (
            "measurement",
            &["--sim-measurement", &"00".repeat(48)],
            "measurement",
        ),
    ];
    for (name, flags, expected) in cases {
        let root = dir.path().join(name);
        let mut args = vec!["--max-attempts", "1"];
        args.extend_from_slice(flags);
        let output = run_initializer(&coordinator, &workload, &root, &args);
        assert!(!output.status.success(), "{name} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        // Upstream's code for a refused attestation, with the failed check as the message.
        assert!(
            stderr.contains("attestation refused")
                && stderr.contains("permissiondenied")
                && stderr.contains(expected),
            "{name}: {stderr}"
        );
        assert!(!root.join("done").exists());
    }

    let stranger = Workload::new("stranger");
    let output = run_initializer(
        &coordinator,
        &stranger,
        &dir.path().join("stranger"),
        &["--max-attempts", "1"],
    );
    assert!(!output.status.success());
    // Upstream's code for a policy that is not in the manifest, and our message.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not found in manifest") && stderr.contains("PermissionDenied"),
        "{stderr}"
    );
    let (status, metrics) = http_get(&coordinator.ops, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("reason=\"unknown_host_data\"} 1"),
        "{metrics}"
    );
    // Per-method call metrics, labelled with the gRPC method and code.
    assert!(
        metrics.contains(
            "contrast_coordinator_grpc_calls_total{method=\"/meshapi.MeshAPI/NewMeshCert\",code=\"permission_denied\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "contrast_coordinator_grpc_calls_total{method=\"/edgelesssys.contrast.userapi.UserAPI/SetManifest\",code=\"ok\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_authorised_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let coordinator = CoordinatorProcess::start(&state_dir, &[]);
    let workloads = vec![Workload::new("web")];
    let first = set_first_manifest(&coordinator, &workloads).await;
    let before = snapshot(&state_dir);
    let next = manifest(
        &[Workload::new("web"), Workload::new("db")],
        default_owner_keys(),
    );
    let next_workloads = [Workload::new("web"), Workload::new("db")];

    // No client key.
    let result = coordinator
        .user_client(None)
        .set_manifest(&set_request(next.clone(), &next_workloads))
        .await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    // A key that is not an owner's.
    let result = coordinator
        .user_client(Some(owner_atls_key(&stranger_key())))
        .set_manifest(&set_request(next.clone(), &next_workloads))
        .await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    // Changing the seed-share owners.
    let mut changed: serde_json::Value = serde_json::from_slice(&next).unwrap();
    changed["SeedshareOwnerPubKeys"] = serde_json::json!([]);
    let result = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&set_request(
            serde_json::to_vec(&changed).unwrap(),
            &next_workloads,
        ))
        .await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    assert!(format!("{result:?}").contains("seedshare"), "{result:?}");
    // A stale expected previous transition.
    let mut stale = set_request(next.clone(), &next_workloads);
    stale.previous_transition_hash = Some(vec![7; 32]);
    let result = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&stale)
        .await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::ManifestConflict,
    );
    // An invalid manifest.
    let result = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&set_request(b"{\"Policies\": 5}".to_vec(), &next_workloads))
        .await;
    assert_refused(
        &result,
        tonic::Code::InvalidArgument,
        ErrorCode::InvalidArgument,
    );
    assert_eq!(
        snapshot(&state_dir),
        before,
        "refused updates changed the store"
    );

    // The owner's update with the right previous transition goes through …
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    let mut atomic = set_request(manifest(&next_workloads, None), &next_workloads);
    atomic.previous_transition_hash = Some(history.value.latest_transition.transition_hash.clone());
    coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&atomic)
        .await
        .unwrap();
    // … and made the manifest immutable (no owner keys): nobody may update it now.
    let before = snapshot(&state_dir);
    let result = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&set_request(next, &next_workloads))
        .await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    assert!(format!("{result:?}").contains("disabled"), "{result:?}");
    assert_eq!(snapshot(&state_dir), before);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_needs_recovery_and_keeps_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let coordinator = CoordinatorProcess::start(&state_dir, &[]);
    let workloads = vec![Workload::new("web")];
    let first = set_first_manifest(&coordinator, &workloads).await;
    let shares = SeedShareDocument::from(first.value.seed_shares_doc.clone().unwrap());
    let seed = shares.seed_shares[0].decrypt(&owners().seedshare).unwrap();

    let coordinator = coordinator.kill9_and_restart();
    assert_eq!(coordinator.readiness(), 503);
    // Recovery mode: user calls and /attest refuse with upstream's codes, the mesh API with
    // the reason.
    let result = coordinator.user_client(None).get_manifests().await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::NeedsRecovery,
    );
    let result = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&set_request(
            manifest(&workloads, default_owner_keys()),
            &workloads,
        ))
        .await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::NeedsRecovery,
    );
    let (status, body) = http_post(
        &coordinator.evidence,
        "/attest",
        "application/json",
        format!("{{\"nonce\":\"{}\"}}", base64_32()).as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 412, "{body}");
    assert!(body.contains("needs_recovery"), "{body}");
    let output = run_initializer(
        &coordinator,
        &workloads[0],
        &dir.path().join("refused"),
        &["--max-attempts", "1"],
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(log.contains("needs_recovery"), "{log}");
    assert!(
        coordinator
            .log_text()
            .contains("waiting for a ready peer, or a seed-share owner's `contrast recover`"),
        "{}",
        coordinator.log_text()
    );

    // Recovery needs the seed-share owner's key: none …
    let recover = RecoverRequest {
        seed: Zeroizing::new(seed.to_vec()),
        salt: shares.salt.clone(),
        force: false,
        history_contains: None,
    };
    let result = coordinator.user_client(None).recover(&recover).await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    // … or a workload owner's is not enough …
    let result = coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .recover(&recover)
        .await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    // … and the right seed: a malformed one …
    let seedshare_key =
        || contrast_attest::atls::AtlsKey::rsa_from_pkcs8_der(&owners().seedshare_pkcs8).unwrap();
    let mut short_salt = recover.clone();
    short_salt.salt = vec![1; 5];
    let result = coordinator
        .user_client(Some(seedshare_key()))
        .recover(&short_salt)
        .await;
    assert_refused(
        &result,
        tonic::Code::InvalidArgument,
        ErrorCode::InvalidArgument,
    );
    // … or another one.
    let mut wrong = recover.clone();
    wrong.seed = Zeroizing::new(vec![1; 64]);
    let result = coordinator
        .user_client(Some(seedshare_key()))
        .recover(&wrong)
        .await;
    assert_refused(
        &result,
        tonic::Code::PermissionDenied,
        ErrorCode::PermissionDenied,
    );
    assert!(format!("{result:?}").contains("do not match"), "{result:?}");
    assert_eq!(coordinator.readiness(), 503);

    coordinator
        .user_client(Some(seedshare_key()))
        .recover(&recover)
        .await
        .unwrap();
    coordinator.wait_for("/probe/readiness", 200, Duration::from_secs(5));
    let result = coordinator
        .user_client(Some(seedshare_key()))
        .recover(&recover)
        .await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::AlreadyRecovered,
    );

    // A certificate issued after recovery verifies against the root from before.
    let root = dir.path().join("after");
    let output = run_initializer(&coordinator, &workloads[0], &root, &["--max-attempts", "3"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    verify_chain(
        &read(&root.join("tls-config/certChain.pem")),
        &first.value.root_ca,
    )
    .unwrap();
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    // The root certificate is re-issued (new serial and validity) for the same seed-derived key.
    assert_eq!(
        root_spki(&history.value.root_ca),
        root_spki(&first.value.root_ca)
    );
}

fn root_spki(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).unwrap();
    let cert = webpki::EndEntityCert::try_from(&der).unwrap();
    cert.subject_public_key_info().to_vec()
}

fn base64_32() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([5u8; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_and_stalled_clients_do_not_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let coordinator = CoordinatorProcess::start(&state_dir, &["--handshake-timeout", "1s"]);
    let workloads = vec![Workload::new("web")];
    let first = set_first_manifest(&coordinator, &workloads).await;

    // /attest: upstream's limits and codes.
    let nonce = format!("{{\"nonce\":\"{}\"}}", base64_32());
    assert_eq!(
        http_post(
            &coordinator.evidence,
            "/attest",
            "application/json",
            nonce.as_bytes()
        )
        .unwrap()
        .0,
        200
    );
    let big = vec![b' '; 2048];
    assert_eq!(
        http_post(&coordinator.evidence, "/attest", "application/json", &big)
            .unwrap()
            .0,
        413
    );
    assert_eq!(
        http_post(
            &coordinator.evidence,
            "/attest",
            "application/json",
            b"{nope"
        )
        .unwrap()
        .0,
        400
    );
    assert_eq!(
        http_post(
            &coordinator.evidence,
            "/attest",
            "text/plain",
            nonce.as_bytes()
        )
        .unwrap()
        .0,
        415
    );
    let (status, body) = http_post(
        &coordinator.evidence,
        "/attest",
        "application/json",
        b"{\"nonce\":\"AAAA\"}",
    )
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("invalid nonce length"), "{body}");
    assert_eq!(http_get(&coordinator.evidence, "/attest").unwrap().0, 405);

    // A client that opens a connection and never speaks is cut off after the handshake
    // timeout; others are served meanwhile.
    let mut stalled = std::net::TcpStream::connect(&coordinator.user).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    coordinator.user_client(None).get_manifests().await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut stalled, &mut buf);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(9));

    // Random bytes on every port.
    for addr in [
        &coordinator.user,
        &coordinator.mesh,
        &coordinator.evidence,
        &coordinator.ops,
    ] {
        for seed in 0..4u8 {
            let noise: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> (seed + 3)) as u8)
                .collect();
            let _ = raw_http(addr, &noise);
        }
    }
    // Still serving, and the stored history still verifies with the seed's key.
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    assert_eq!(history.value.manifests.len(), 1);
    let engine = {
        let shares = SeedShareDocument::from(first.value.seed_shares_doc.clone().unwrap());
        let seed = shares.seed_shares[0].decrypt(&owners().seedshare).unwrap();
        SeedEngine::new(&seed, &shares.salt).unwrap()
    };
    let store = contrast_store::FileStore::open(&state_dir, Default::default())
        .await
        .unwrap();
    let loaded = contrast_store::HistoryStore::new(store)
        .load(&engine.history_verifying_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.generation(), 1);
    let output = run_initializer(
        &coordinator,
        &workloads[0],
        &dir.path().join("after-noise"),
        &["--max-attempts", "3"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_manifest_is_validated_and_a_wrong_coordinator_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    // A client expecting another Coordinator measurement refuses before sending anything.
    let mut reference = environment().1.reference_values();
    reference.trusted_measurement = "00".repeat(48);
    let validator = contrast_attest::AtlsValidator::new(contrast_attest::Verifier::new(
        &[reference],
        coordinator_validator().verifier().policy().clone(),
    ));
    let client = CoordinatorClient::new(coordinator.user.clone(), AtlsClient::new(validator));
    let workloads = vec![Workload::new("web")];
    let result = client
        .set_manifest(&set_request(
            manifest(&workloads, default_owner_keys()),
            &workloads,
        ))
        .await;
    assert!(
        matches!(result, Err(ClientError::Attestation { .. })),
        "{result:?}"
    );
    assert_eq!(coordinator.readiness(), 503, "nothing was set");
    // Nothing set yet: no history to read, nothing to recover.
    let result = coordinator.user_client(None).get_manifests().await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::NoManifest,
    );
    assert!(
        format!("{result:?}").contains("no manifest configured"),
        "{result:?}"
    );
    let result = coordinator
        .user_client(Some(
            contrast_attest::atls::AtlsKey::rsa_from_pkcs8_der(&owners().seedshare_pkcs8).unwrap(),
        ))
        .recover(&RecoverRequest {
            seed: Zeroizing::new(vec![1; 64]),
            salt: vec![2; 32],
            force: false,
            history_contains: None,
        })
        .await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::NoManifest,
    );
    assert!(
        format!("{result:?}").contains("no state to recover from"),
        "{result:?}"
    );
    // A manifest that is not JSON.
    let result = coordinator
        .user_client(None)
        .set_manifest(&set_request(b"not json".to_vec(), &workloads))
        .await;
    assert_refused(
        &result,
        tonic::Code::InvalidArgument,
        ErrorCode::InvalidArgument,
    );
    // A manifest missing a policy blob is refused.
    let mut request = set_request(manifest(&workloads, default_owner_keys()), &workloads);
    request.policies.pop();
    let result = coordinator.user_client(None).set_manifest(&request).await;
    assert_refused(
        &result,
        tonic::Code::InvalidArgument,
        ErrorCode::InvalidArgument,
    );
    assert!(
        format!("{result:?}").contains("no policy provided"),
        "{result:?}"
    );
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let pid = coordinator.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = coordinator.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}\n{}", coordinator.log_text());
    let log = coordinator.log_text();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

/// ALPN as upstream: our client offers `[atls:v1:nonce:<hex>, h2]` and the Coordinator selects
/// h2; a client offering HTTP/1.1 instead of h2 is refused in the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_atls_listeners_negotiate_h2_and_refuse_http11() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let handshake = |config: rustls::ClientConfig| {
        let addr = coordinator.user.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(
                    rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                    tcp,
                )
                .await
        }
    };
    let (config, slot) = AtlsClient::new(coordinator_validator())
        .config(&mut rand_core::OsRng)
        .unwrap();
    assert_eq!(config.alpn_protocols.len(), 2);
    assert!(config.alpn_protocols[0].starts_with(b"atls:v1:nonce:"));
    assert_eq!(config.alpn_protocols[1], b"h2");
    let tls = handshake(config).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert!(slot.peer().is_some(), "{:?}", slot.error());

    let (mut config, _) = AtlsClient::new(coordinator_validator())
        .config(&mut rand_core::OsRng)
        .unwrap();
    config.alpn_protocols.truncate(1);
    config.alpn_protocols.push(b"http/1.1".to_vec());
    let error = handshake(config).await.unwrap_err();
    assert!(
        error
            .to_string()
            .to_lowercase()
            .contains("application protocol")
            || error.to_string().contains("NoApplicationProtocol"),
        "{error}"
    );
    // The listener still serves gRPC.
    let result = coordinator.user_client(None).get_manifests().await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::NoManifest,
    );
}

/// A data owner verifies the running Coordinator through upstream's `/attest` with the SDK:
/// online, then offline from the saved answer; the answer is bound to its nonce and to the
/// history, so a replay under another nonce and an outdated answer after an update are caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_owner_verifies_the_coordinator_through_attest() {
    use contrast_core::manifest::ManifestDocument;
    use contrast_sdk::{DeploymentError, fetch_attestation, validate_attestation};
    let now = || contrast_attest::UnixTime::from(std::time::SystemTime::now());
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let nonce = [0x4e; 32];

    // No manifest yet: upstream's 412, with our code.
    match fetch_attestation(&coordinator.evidence, &nonce).await {
        Err(ClientError::Evidence {
            status: 412,
            code: ErrorCode::NoManifest,
            ..
        }) => {}
        other => panic!("expected 412 no_manifest, got {other:?}"),
    }

    let workloads = [Workload::new("web"), Workload::new("db")];
    let first = set_first_manifest(&coordinator, &workloads).await;
    let expected = ManifestDocument::parse(manifest(&workloads, default_owner_keys())).unwrap();
    let body = fetch_attestation(&coordinator.evidence, &nonce)
        .await
        .unwrap();
    let verified = validate_attestation(&nonce, &body, now()).unwrap();
    verified.deployment.check_latest_is(&expected).unwrap();
    assert_eq!(verified.root_ca, first.value.root_ca);
    assert_eq!(verified.mesh_ca, first.value.mesh_ca);
    assert_eq!(
        verified.coordinator.host_data,
        coordinator_workload().host_data()
    );
    assert_eq!(
        verified.policies.len(),
        3,
        "the coordinator's and both workloads'"
    );

    // The saved answer under another nonce is a replay.
    match validate_attestation(&[0x4f; 32], &body, now()) {
        Err(DeploymentError::Evidence { reason }) => {
            assert!(reason.contains("report data"), "{reason}");
        }
        other => panic!("expected a refused replay, got {other:?}"),
    }

    // After an update the old answer still verifies (it is genuine) but no longer shows the
    // manifest in force; a fresh one does.
    let updated = manifest(&workloads[..1], default_owner_keys());
    coordinator
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&set_request(updated.clone(), &workloads[..1]))
        .await
        .unwrap();
    let current = ManifestDocument::parse(updated).unwrap();
    let old = validate_attestation(&nonce, &body, now()).unwrap();
    assert!(matches!(
        old.deployment.check_latest_is(&current),
        Err(DeploymentError::UnexpectedManifest { .. })
    ));
    let body = fetch_attestation(&coordinator.evidence, &nonce)
        .await
        .unwrap();
    let fresh = validate_attestation(&nonce, &body, now()).unwrap();
    fresh.deployment.check_latest_is(&current).unwrap();
    assert_eq!(fresh.deployment.manifests.len(), 2);
    fresh
        .deployment
        .check_extends(&verified.deployment.latest_transition_hash)
        .unwrap();
}

/// Issue 19, item 1 (reproduced first): an attacker with write access to the store writes a
/// self-consistent history under its own seed into the store of a running Coordinator and
/// recovers it with that seed's share. The Coordinator judges the head tampering (not signed
/// with its history key): it stops being ready, counts it, refuses the attacker's recovery and
/// keeps its own state; once the store holds its head again, it serves as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_history_written_into_the_store_does_not_take_over() {
    use contrast_core::manifest::ManifestDocument;
    use contrast_store::{FileStore, FileStoreOptions, HistoryStore, Key, Store};
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let coordinator = CoordinatorProcess::start(&state_dir, &["--metrics"]);
    let workloads = [Workload::new("web")];
    let first = set_first_manifest(&coordinator, &workloads).await;
    coordinator.wait_for("/probe/readiness", 200, Duration::from_secs(5));

    // The attacker's history: its seed, a manifest giving its own workload a place.
    let store = FileStore::open(&state_dir, FileStoreOptions::default())
        .await
        .unwrap();
    let own_head = store.get(&Key::latest_transition()).await.unwrap().unwrap();
    let history = HistoryStore::new(store.clone());
    let attacker = SeedEngine::new(&[0xa5; 64], &[0x5a; 32]).unwrap();
    let evil = [Workload::new("evil")];
    let attacker_manifest = ManifestDocument::parse(manifest(&evil, None)).unwrap();
    let current = history.latest_unverified().await.unwrap();
    history
        .update(
            current.as_ref(),
            &attacker_manifest,
            &policies(&evil),
            None,
            attacker.history_signing_key(),
            &mut rand_core::OsRng,
        )
        .await
        .unwrap();

    coordinator.wait_for("/probe/readiness", 503, Duration::from_secs(10));
    let result = coordinator.user_client(None).get_manifests().await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::HistoryTampered,
    );
    assert!(
        format!("{result:?}").contains("not signed by this coordinator's history key"),
        "{result:?}"
    );
    let (_, metrics) = http_get(&coordinator.ops, "/metrics").unwrap();
    assert!(
        metrics.contains("contrast_coordinator_history_tampering_total{kind=\"foreign_head\"}"),
        "{metrics}"
    );
    // The attacker's seed does not recover it.
    let seedshare_key =
        contrast_attest::atls::AtlsKey::rsa_from_pkcs8_der(&owners().seedshare_pkcs8).unwrap();
    let result = coordinator
        .user_client(Some(seedshare_key))
        .recover(&RecoverRequest {
            seed: Zeroizing::new(vec![0xa5; 64]),
            salt: vec![0x5a; 32],
            force: true,
            history_contains: None,
        })
        .await;
    assert_refused(
        &result,
        tonic::Code::FailedPrecondition,
        ErrorCode::HistoryTampered,
    );
    // No workload gets a certificate meanwhile, the attacker's least of all.
    let output = run_initializer(
        &coordinator,
        &evil[0],
        &dir.path().join("evil"),
        &["--max-attempts", "1"],
    );
    assert!(!output.status.success());

    // The store repaired: the Coordinator serves its own history again.
    let tampered = store.get(&Key::latest_transition()).await.unwrap().unwrap();
    store
        .compare_and_swap(&Key::latest_transition(), &tampered, &own_head)
        .await
        .unwrap();
    coordinator.wait_for("/probe/readiness", 200, Duration::from_secs(10));
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    assert_eq!(history.value.manifests.len(), 1);
    assert_eq!(history.value.root_ca, first.value.root_ca);
}

/// Issue 19, item 6 (reproduced first): metrics are off unless asked for, as upstream; when on,
/// request paths chosen by clients never become labels, so a flood of odd paths (long, with a
/// `"`) neither grows the exposition nor breaks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_opt_in_and_their_labels_a_fixed_set() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = CoordinatorProcess::start(&dir.path().join("quiet"), &[]);
    let (status, body) = http_get(&quiet.ops, "/metrics").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--metrics"), "{body}");
    drop(quiet);

    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &["--metrics"]);
    for i in 0..300 {
        let path = format!("/probe{i}-{}\"x", "a".repeat(200));
        let _ = http_get(&coordinator.evidence, &path);
    }
    let _ = http_get(&coordinator.evidence, "/attest");
    let (status, metrics) = http_get(&coordinator.ops, "/metrics").unwrap();
    assert_eq!(status, 200);
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("contrast_coordinator_requests_total{"))
        .collect();
    assert!(
        requests
            .contains(&"contrast_coordinator_requests_total{path=\"other\",status=\"404\"} 300"),
        "{requests:?}"
    );
    assert!(
        requests
            .contains(&"contrast_coordinator_requests_total{path=\"/attest\",status=\"405\"} 1"),
        "{requests:?}"
    );
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        !metrics.contains("aaaa"),
        "no client-chosen text in the exposition"
    );
    assert!(metrics.len() < 20_000, "{} bytes", metrics.len());
}

/// The coordinator's peak resident set (`VmHWM`) in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A manifest of about `size` bytes that decodes (many policies), as big as the user API takes.
fn large_manifest(size: usize) -> Vec<u8> {
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&manifest(&[Workload::new("web")], default_owner_keys())).unwrap();
    let policies = manifest["Policies"].as_object_mut().unwrap();
    let mut i = 0u64;
    let mut len = 0;
    while len < size {
        let key = hex::encode(contrast_core::sha256(&i.to_le_bytes()));
        let entry = serde_json::json!({
            "SANs": [format!("flood-{i}"), "*"],
            "WorkloadSecretID": format!("default/flood-{i}"),
            "Role": "",
        });
        len += key.len() + entry.to_string().len() + 4;
        policies.insert(key, entry);
        i += 1;
    }
    serde_json::to_vec(&manifest).unwrap()
}

/// A flood of large set-manifest requests (unauthorised ones without a key, with a stranger's
/// key and with a bogus detached signature, and authorised-looking ones with the owner's key)
/// keeps the Coordinator's peak memory bounded: at most two requests (one by an owner's key,
/// one by anybody else) are read at once, the others are refused before their body is read.
///
/// The bound is the generated memory limit (128 MiB) less the headroom it keeps for
/// connections: idle (~29 MiB) + 2 × 4 MiB × ~9 (decoding a manifest of many small policies)
/// ≈ 100 MiB (`contrast generate`'s `DEFAULT_COORDINATOR_MEMORY_MIB`). Before the admission,
/// 32 such requests of 16 MiB peaked at 604–651 MiB, and of 4 MiB at 182 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_set_manifest_requests_keeps_memory_bounded() {
    const PER_KIND: usize = 8;
    const PEAK_BOUND: u64 = 112 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let workloads = vec![Workload::new("web")];
    set_first_manifest(&coordinator, &workloads).await;
    let before = peak_rss(coordinator.pid());

    // Just under the user API's request limit, with room for the protobuf framing.
    let big = set_request(
        large_manifest(contrast_grpc::USER_API_MAX_REQUEST - 64 * 1024),
        &workloads,
    );
    let mut signed = big.clone();
    signed.signature = Some(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
    let stranger = stranger_key();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..PER_KIND {
        for (key, request) in [
            (None, &big),
            (Some(owner_atls_key(&stranger)), &big),
            (None, &signed),
            (Some(owner_atls_key(&owners().workload)), &big),
        ] {
            let client = coordinator.user_client(key);
            let request = request.clone();
            calls.spawn(async move { client.set_manifest(&request).await.map(|_| ()) });
        }
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    while let Some(result) = calls.join_next().await {
        let outcome = match result.unwrap() {
            Ok(()) => "ok".to_owned(),
            Err(error) => error
                .grpc_code()
                .map_or_else(|| format!("{error}"), |code| format!("{code:?}")),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let peak = peak_rss(coordinator.pid());
    eprintln!(
        "peak RSS: {} MiB before the flood, {} MiB after; outcomes {outcomes:?}",
        before / (1024 * 1024),
        peak / (1024 * 1024)
    );
    assert!(
        peak < PEAK_BOUND,
        "peak RSS {} MiB (before the flood {} MiB), outcomes {outcomes:?}",
        peak / (1024 * 1024),
        before / (1024 * 1024)
    );
    // Still serving, the manifest unchanged.
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    assert_eq!(history.value.manifests.len(), 1);
}

/// Sends `request` over a raw gRPC client that encodes messages beyond the user API's limit
/// (the SDK refuses to), with `key` as the client certificate.
async fn raw_set_manifest(
    coordinator: &CoordinatorProcess,
    key: Option<contrast_attest::atls::AtlsKey>,
    request: contrast_grpc::userapi::SetManifestRequest,
) -> tonic::Status {
    let mut atls = AtlsClient::new(coordinator_validator());
    if let Some(key) = key {
        atls = atls.with_key(std::sync::Arc::new(key));
    }
    let connected =
        contrast_grpc::client::connect(&coordinator.user, &atls, Duration::from_secs(30))
            .await
            .unwrap();
    let origin = connected.channel.origin();
    let mut client = contrast_grpc::userapi::user_api_client::UserApiClient::with_origin(
        connected.channel,
        origin,
    )
    .max_encoding_message_size(usize::MAX);
    client.set_manifest(request).await.unwrap_err()
}

/// Where no detached signature can authorise an update (the manifest in force lists owner key
/// digests only), a caller without an owner's key is refused before its body is read: a body
/// beyond the request limit is refused for the caller, not for its size. The owner's oversized
/// request is read and refused for its size (4 MiB, as grpc-go receives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorised_update_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let workloads = vec![Workload::new("web")];
    let mut digests_only: serde_json::Value =
        serde_json::from_slice(&manifest(&workloads, None)).unwrap();
    digests_only["WorkloadOwnerKeyDigests"] =
        serde_json::json!([hex::encode(owners().workload.public_key().digest())]);
    coordinator
        .user_client(None)
        .set_manifest(&set_request(
            serde_json::to_vec(&digests_only).unwrap(),
            &workloads,
        ))
        .await
        .unwrap();

    let oversized = contrast_grpc::userapi::SetManifestRequest::from(set_request(
        vec![b' '; contrast_grpc::USER_API_MAX_REQUEST + 1],
        &workloads,
    ));
    let status = raw_set_manifest(&coordinator, None, oversized.clone()).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        contrast_grpc::error_code(&status),
        ErrorCode::PermissionDenied
    );
    let stranger = owner_atls_key(&stranger_key());
    let status = raw_set_manifest(&coordinator, Some(stranger), oversized.clone()).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // The owner is admitted; its request is read and is too large.
    let owner = owner_atls_key(&owners().workload);
    let status = raw_set_manifest(&coordinator, Some(owner), oversized).await;
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // The refusals were counted under the method.
    let history = coordinator.user_client(None).get_manifests().await.unwrap();
    assert_eq!(history.value.manifests.len(), 1);
}

/// Opens `n` TCP connections to `addr` that never speak.
fn idle_connections(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect()
}

/// Whether the server closes a fresh connection to `addr` without a word (it is at its cap).
fn closed_at_once(addr: &str) -> bool {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A guard against a hang, not a timing assertion: a served connection waits for the
    // client (a TLS ClientHello, an HTTP request) and never answers on its own.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1];
    match std::io::Read::read(&mut stream, &mut buf) {
        Ok(0) => true,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Retries `call` until it succeeds (a slot frees once the server has seen a connection end).
async fn eventually<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    mut call: impl FnMut() -> F,
) -> T {
    let mut last = None;
    for _ in 0..100 {
        match call().await {
            Ok(value) => return value,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never succeeded: {last:?}");
}

/// Each listener holds at most --max-connections open connections: the next one is closed as
/// soon as it is accepted (and counted), others are unaffected, and a connection that ends
/// frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_caps_its_open_connections() {
    const CAP: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(
        &dir.path().join("state"),
        &[
            "--max-connections",
            "4",
            "--handshake-timeout",
            "60s",
            "--metrics",
        ],
    );
    set_first_manifest(&coordinator, &[Workload::new("web")]).await;

    // The aTLS user API: CAP connections that never handshake hold every place. The client
    // connection of the set above may still hold one for a moment after it ended: then one
    // more idle connection takes the place it frees.
    let mut held = idle_connections(&coordinator.user, CAP);
    let mut top_ups = 0;
    while !(closed_at_once(&coordinator.user)
        && coordinator.user_client(None).get_manifests().await.is_err())
    {
        top_ups += 1;
        assert!(top_ups <= 3, "the user API never reached its cap");
        held.extend(idle_connections(&coordinator.user, 1));
    }
    // The other listeners have their own places.
    assert_eq!(
        http_get(&coordinator.evidence, "/capabilities").unwrap().0,
        200
    );
    // One ends: its place is free again.
    drop(held.pop());
    let client = coordinator.user_client(None);
    eventually(|| client.get_manifests()).await;

    // The plain HTTP evidence API likewise.
    let mut held_plain = idle_connections(&coordinator.evidence, CAP);
    let mut top_ups = 0;
    while !closed_at_once(&coordinator.evidence) {
        top_ups += 1;
        assert!(top_ups <= 3, "the evidence API never reached its cap");
        held_plain.extend(idle_connections(&coordinator.evidence, 1));
    }
    drop(held_plain.pop());
    eventually(|| async { http_get(&coordinator.evidence, "/capabilities") }).await;

    let (_, metrics) = http_get(&coordinator.ops, "/metrics").unwrap();
    for listener in ["user", "evidence"] {
        assert!(
            metrics.contains(&format!(
                "contrast_coordinator_connections_refused_total{{listener=\"{listener}\"}}"
            )),
            "{metrics}"
        );
    }
    drop((held, held_plain));
}

/// A mesh connection whose client's attestation was refused gets the refusal on its first
/// request and is then closed (GOAWAY), not held for the connection timeout: a second request
/// on it is not answered by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_attestation_was_refused_is_closed_after_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    set_first_manifest(&coordinator, &[Workload::new("web")]).await;

    // A client certificate without attestation: refused in the handshake, told on request.
    let atls = AtlsClient::new(coordinator_validator())
        .with_key(std::sync::Arc::new(owner_atls_key(&stranger_key())));
    let connected =
        contrast_grpc::client::connect(&coordinator.mesh, &atls, Duration::from_secs(30))
            .await
            .unwrap();
    let origin = connected.channel.origin();
    let mut client = contrast_grpc::meshapi::mesh_api_client::MeshApiClient::with_origin(
        connected.channel,
        origin,
    );
    let refusal = client
        .new_mesh_cert(contrast_grpc::meshapi::NewMeshCertRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied, "{refusal:?}");
    assert!(refusal.message().contains("attestation"), "{refusal:?}");
    // The server shuts the connection down after that answer (GOAWAY; a request already on
    // its way may still be answered): soon a request on it fails on the closed connection
    // instead of being answered, well before the 120 s connection timeout.
    let mut answered = 0;
    let closed = loop {
        match client
            .new_mesh_cert(contrast_grpc::meshapi::NewMeshCertRequest::default())
            .await
        {
            Err(status) if status.code() == tonic::Code::PermissionDenied && answered < 50 => {
                answered += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    let status = closed.unwrap_err();
    assert_ne!(
        status.code(),
        tonic::Code::PermissionDenied,
        "still answered after {answered} requests: {status:?}"
    );
    assert!(answered <= 1, "{answered} more requests were answered");
}

/// The initializer attests the Coordinator: a real, ready Coordinator whose policy hash is not
/// the one the pod was generated with is refused (nothing written), the one it was generated
/// with is trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initializers_refuse_a_coordinator_with_another_policy_hash() {
    use contrast_core::coordinator_identity::CoordinatorIdentity;
    use contrast_testkit::process::initializer_command;

    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let workloads = vec![Workload::new("web")];
    set_first_manifest(&coordinator, &workloads).await;
    coordinator.wait_for("/probe/readiness", 200, Duration::from_secs(5));

    let (_, env) = environment();
    let other = CoordinatorIdentity::new(
        vec![Workload::new("another coordinator").host_data()],
        vec![env.reference_values()],
    )
    .unwrap();
    let root = dir.path().join("web-refusing");
    let output = initializer_command(
        &coordinator.mesh,
        &other,
        sim_dir(),
        &workloads[0].host_data_hex(),
        &root,
    )
    .args(["--max-attempts", "2"])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed attestation"), "{stderr}");
    assert!(
        stderr.contains(&coordinator_workload().host_data_hex()[..4]),
        "{stderr}"
    );
    assert!(!root.exists(), "{stderr}");

    let root = dir.path().join("web");
    let output = run_initializer(&coordinator, &workloads[0], &root, &["--max-attempts", "3"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(root.join("tls-config/certChain.pem").exists());
}

/// Revocation end to end, with the CRL required (the default): every simulated document carries
/// the simulated ARK's CRL; once a chip's VCEK is revoked in the sim dir, a workload on that
/// chip is refused with the revocation named, and one on another chip is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_on_a_chip_whose_vcek_was_revoked_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&dir.path().join("state"), &[]);
    let workloads = vec![Workload::new("web")];
    set_first_manifest(&coordinator, &workloads).await;
    coordinator.wait_for("/probe/readiness", 200, Duration::from_secs(5));

    let (_, env) = environment();
    let (revoked_chip, other_chip) = ([0xc4; 64], [0xc5; 64]);
    let serial = env
        .platform()
        .vcek_serial(&revoked_chip, env.launch().tcb.into());
    env.revoke(&serial, "VCEK of chip c4c4…", std::time::SystemTime::now())
        .unwrap();

    let root = dir.path().join("revoked");
    let output = run_initializer(
        &coordinator,
        &workloads[0],
        &root,
        &[
            "--max-attempts",
            "2",
            "--sim-chip-id",
            &hex::encode(revoked_chip),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the VCEK (serial {})", hex::encode(&serial)))
            && stderr.contains("is revoked by the ARK's CRL"),
        "{stderr}"
    );
    assert!(!root.exists(), "{stderr}");

    let root = dir.path().join("admitted");
    let output = run_initializer(
        &coordinator,
        &workloads[0],
        &root,
        &[
            "--max-attempts",
            "3",
            "--sim-chip-id",
            &hex::encode(other_chip),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
