//! The transit engine end to end: real `coordinator` and `initializer` processes on loopback
//! (simulated SEV-SNP, file store), a Rust HTTPS client presenting the mesh certificate an
//! initializer wrote.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use contrast_core::api::{RecoverRequest, SetManifestRequest, TRANSIT_BODY_LIMIT};
use contrast_core::seedshare::SeedShareDocument;
use contrast_testkit::fixtures::*;
use contrast_testkit::process::CoordinatorProcess;
use contrast_testkit::transit::{ClientIdentity, client_config, mesh_ca, path, post};
use serde_json::{Value, json};
use zeroize::Zeroizing;

fn set_request(workloads: &[Workload]) -> SetManifestRequest {
    SetManifestRequest {
        manifest: manifest(workloads, default_owner_keys()),
        policies: policies(workloads),
        previous_transition_hash: None,
        signature: None,
    }
}

/// Runs an initializer for `workload` and returns the root it wrote.
fn initialize(coordinator: &CoordinatorProcess, workload: &Workload, root: &Path) {
    let output = run_initializer(coordinator, workload, root, &["--max-attempts", "3"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn call(
    coordinator: &CoordinatorProcess,
    root: &Path,
    operation: &str,
    name: &str,
    body: &Value,
) -> (u16, Value) {
    let config = client_config(&mesh_ca(root), &ClientIdentity::from_initializer(root));
    post(
        coordinator.transit.as_deref().unwrap(),
        config,
        &path(operation, name),
        body.to_string().as_bytes(),
    )
    .await
    .unwrap()
}

fn ciphertext_of(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["data"]["ciphertext"].as_str().unwrap().to_owned()
}

fn plaintext_of(answer: &(u16, Value)) -> Vec<u8> {
    assert_eq!(answer.0, 200, "{}", answer.1);
    STANDARD
        .decode(answer.1["data"]["plaintext"].as_str().unwrap())
        .unwrap()
}

fn assert_error(answer: &(u16, Value), status: u16, starts_with: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let message = answer.1["errors"][0].as_str().unwrap_or_default();
    assert!(message.starts_with(starts_with), "{}", answer.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_engine_serves_each_workload_its_own_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let coordinator = CoordinatorProcess::start_with_transit(&state_dir, &[]);
    let transit = coordinator.transit.clone().unwrap();
    let vault = Workload::new("vault");
    let web = Workload::new("web");
    let workloads = vec![vault.clone(), web.clone()];

    // Not active yet: the connection is closed before the handshake.
    let refused = post(
        &transit,
        client_config(b"", &ClientIdentity::None),
        &path("encrypt", "x"),
        b"{}",
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");

    let first = coordinator
        .user_client(None)
        .set_manifest(&set_request(&workloads))
        .await
        .unwrap();
    let vault_root = dir.path().join("vault");
    let web_root = dir.path().join("web");
    initialize(&coordinator, &vault, &vault_root);
    initialize(&coordinator, &web, &web_root);
    let name = vault.secret_id();

    // Encrypt and decrypt, key version 0 with associated data …
    let request = json!({"plaintext": STANDARD.encode(b"unseal key"), "associated_data": STANDARD.encode(b"ad")});
    let v0 = ciphertext_of(&call(&coordinator, &vault_root, "encrypt", &name, &request).await);
    assert!(v0.starts_with("vault:v0:"), "{v0}");
    let opened = call(
        &coordinator,
        &vault_root,
        "decrypt",
        &name,
        &json!({"ciphertext": v0, "associated_data": STANDARD.encode(b"ad")}),
    )
    .await;
    assert_eq!(plaintext_of(&opened), b"unseal key");
    // … other associated data fails …
    let wrong_ad = call(
        &coordinator,
        &vault_root,
        "decrypt",
        &name,
        &json!({"ciphertext": v0, "associated_data": STANDARD.encode(b"other")}),
    )
    .await;
    assert_error(&wrong_ad, 400, "decrypting");
    // … a second key version …
    let v7 = ciphertext_of(
        &call(
            &coordinator,
            &vault_root,
            "encrypt",
            &name,
            &json!({"plaintext": STANDARD.encode(b"rotated"), "key_version": 7}),
        )
        .await,
    );
    assert!(v7.starts_with("vault:v7:"), "{v7}");
    let opened = call(
        &coordinator,
        &vault_root,
        "decrypt",
        &name,
        &json!({"ciphertext": v7}),
    )
    .await;
    assert_eq!(plaintext_of(&opened), b"rotated");
    // … and its ciphertext relabelled as version 0 does not open.
    let relabelled = v7.replacen("vault:v7:", "vault:v0:", 1);
    let wrong_version = call(
        &coordinator,
        &vault_root,
        "decrypt",
        &name,
        &json!({"ciphertext": relabelled}),
    )
    .await;
    assert_error(&wrong_version, 400, "decrypting");

    // Another workload's certificate names another key: 403 and upstream's body.
    let stranger = call(&coordinator, &web_root, "encrypt", &name, &request).await;
    assert_error(&stranger, 403, "Unauthorized: ");
    let stranger = call(
        &coordinator,
        &web_root,
        "decrypt",
        &name,
        &json!({"ciphertext": v0}),
    )
    .await;
    assert_error(&stranger, 403, "Unauthorized: ");
    // Its own key works for it, and is another key.
    let own = ciphertext_of(
        &call(
            &coordinator,
            &web_root,
            "encrypt",
            &web.secret_id(),
            &request,
        )
        .await,
    );
    let cross = call(
        &coordinator,
        &web_root,
        "decrypt",
        &web.secret_id(),
        &json!({"ciphertext": v0, "associated_data": STANDARD.encode(b"ad")}),
    )
    .await;
    assert_error(&cross, 400, "decrypting");
    assert!(own.starts_with("vault:v0:"));

    // No client certificate: the handshake fails.
    let anonymous = post(
        &transit,
        client_config(&mesh_ca(&vault_root), &ClientIdentity::None),
        &path("encrypt", &name),
        request.to_string().as_bytes(),
    )
    .await;
    assert!(anonymous.is_err(), "{anonymous:?}");

    // A certificate of another deployment's mesh CA: the handshake fails.
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = CoordinatorProcess::start(&other_dir.join("state"), &[]);
    other
        .user_client(None)
        .set_manifest(&set_request(&workloads))
        .await
        .unwrap();
    let foreign_root = other_dir.join("vault");
    initialize(&other, &vault, &foreign_root);
    let foreign = post(
        &transit,
        client_config(
            &mesh_ca(&vault_root),
            &ClientIdentity::from_initializer(&foreign_root),
        ),
        &path("encrypt", &name),
        request.to_string().as_bytes(),
    )
    .await;
    assert!(foreign.is_err(), "{foreign:?}");
    drop(other);

    // Malformed and oversized bodies: 400 with the error body.
    for body in [
        json!({"plaintext": "not base64!"}),
        json!({"plaintext": STANDARD.encode(b"x"), "key_version": -1}),
        json!({}),
    ] {
        let answer = call(&coordinator, &vault_root, "encrypt", &name, &body).await;
        assert_error(&answer, 400, "parsing");
    }
    for body in [
        json!({"ciphertext": "vault:v0:AAAA"}),
        json!({"ciphertext": "vault:vx:AAAA"}),
        json!({"ciphertext": "plain"}),
    ] {
        let answer = call(&coordinator, &vault_root, "decrypt", &name, &body).await;
        assert_error(&answer, 400, "parsing decryption request");
    }
    let oversized = json!({"plaintext": STANDARD.encode(vec![0u8; TRANSIT_BODY_LIMIT])});
    let answer = call(&coordinator, &vault_root, "encrypt", &name, &oversized).await;
    assert_error(&answer, 400, "request body exceeds");
    let config = client_config(
        &mesh_ca(&vault_root),
        &ClientIdentity::from_initializer(&vault_root),
    );
    let not_json = post(&transit, config, &path("encrypt", &name), b"{not json")
        .await
        .unwrap();
    assert_error(&not_json, 400, "parsing encryption request");

    // kill -9 and user recovery: the ciphertext still opens (with a certificate of the new
    // mesh CA, which recovery rotates, as a restarted workload gets).
    let shares = SeedShareDocument::from(first.value.seed_shares_doc.clone().unwrap());
    let seed = shares.seed_shares[0].decrypt(&owners().seedshare).unwrap();
    let coordinator = coordinator.kill9_and_restart();
    let refused = post(
        &transit,
        client_config(
            &mesh_ca(&vault_root),
            &ClientIdentity::from_initializer(&vault_root),
        ),
        &path("decrypt", &name),
        b"{}",
    )
    .await;
    assert!(refused.is_err(), "in recovery: {refused:?}");
    let seedshare_key =
        contrast_attest::atls::AtlsKey::rsa_from_pkcs8_der(&owners().seedshare_pkcs8).unwrap();
    coordinator
        .user_client(Some(seedshare_key))
        .recover(&RecoverRequest {
            seed: Zeroizing::new(seed.to_vec()),
            salt: shares.salt.clone(),
            force: false,
            history_contains: None,
        })
        .await
        .unwrap();
    let renewed = dir.path().join("vault-renewed");
    initialize(&coordinator, &vault, &renewed);
    let opened = call(
        &coordinator,
        &renewed,
        "decrypt",
        &name,
        &json!({"ciphertext": v0, "associated_data": STANDARD.encode(b"ad")}),
    )
    .await;
    assert_eq!(plaintext_of(&opened), b"unseal key");
    let opened = call(
        &coordinator,
        &renewed,
        "decrypt",
        &name,
        &json!({"ciphertext": v7}),
    )
    .await;
    assert_eq!(plaintext_of(&opened), b"rotated");
    assert!(!coordinator.log_text().contains("unseal key"));
}
