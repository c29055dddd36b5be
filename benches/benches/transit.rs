//! The Coordinator's transit engine over HTTPS, next to raw AES-256-GCM of the same sizes, in
//! one criterion group:
//!
//! - `encrypt_one_connection`, `decrypt_one_connection`: one client, one keep-alive HTTPS/1.1
//!   connection with its mesh certificate (made by a real initializer), requests one after the
//!   other: the time of one request.
//! - `encrypt_64_clients`, `decrypt_64_clients`: 64 clients, each on its own connection, all at
//!   once: wall time divided by the requests, so the reported time is 1 / throughput.
//! - `raw_aes_256_gcm_seal`, `raw_aes_256_gcm_open`: aws-lc-rs AES-256-GCM of the same
//!   plaintext with a prepared key, in this process: the floor of the cryptography alone.
//! - `key_derivation`: `contrast_coordinator::transit::key`, the HKDF the engine runs per
//!   request to derive the key from the seed (nothing is cached), once per group.
//!
//! The Coordinator is the real binary in simulated mode (`target/release/coordinator`, built
//! with its `simulated` feature), on loopback, sharing the machine's cores with the clients.
//!
//! ```sh
//! cargo build --release -p coordinator -p initializer --features coordinator/simulated,initializer/simulated
//! cargo bench -p contrast-benches --bench transit
//! ```
// A bench whose setup fails must stop loudly rather than time something else.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use contrast_core::api::SetManifestRequest;
use contrast_testkit::fixtures::{
    Workload, default_owner_keys, manifest, policies, run_initializer,
};
use contrast_testkit::process::CoordinatorProcess;
use contrast_testkit::transit::{ClientIdentity, SERVER_NAME, client_config, mesh_ca, path};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// Plaintext sizes: a Vault unseal key wrapped with its metadata, and a larger record.
const SIZES: [usize; 2] = [64, 4096];
const CLIENTS: usize = 64;

/// One keep-alive HTTPS/1.1 connection to the transit engine.
async fn connect(addr: &str, config: Arc<rustls::ClientConfig>) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// One request on `sender`: the response body, after checking the status is 200.
async fn request(sender: &mut SendRequest<Full<Bytes>>, path: &str, body: &Bytes) -> Bytes {
    sender.ready().await.unwrap();
    let request = http::Request::post(path)
        .header(http::header::HOST, SERVER_NAME)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    bytes
}

/// The deployment: a Coordinator with the transit engine, a manifest with the workload `vault`,
/// and the initializer's certificate for it.
struct Deployment {
    _dir: tempfile::TempDir,
    _coordinator: CoordinatorProcess,
    transit: String,
    config: Arc<rustls::ClientConfig>,
    name: String,
}

fn deployment(runtime: &tokio::runtime::Runtime) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start_with_transit(&dir.path().join("state"), &[]);
    let vault = Workload::new("vault");
    let workloads = vec![vault.clone()];
    runtime
        .block_on(
            coordinator
                .user_client(None)
                .set_manifest(&SetManifestRequest {
                    manifest: manifest(&workloads, default_owner_keys()),
                    policies: policies(&workloads),
                    previous_transition_hash: None,
                    signature: None,
                }),
        )
        .unwrap();
    let root = dir.path().join("vault");
    let output = run_initializer(&coordinator, &vault, &root, &["--max-attempts", "5"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = Arc::new(client_config(
        &mesh_ca(Path::new(&root)),
        &ClientIdentity::from_initializer(&root),
    ));
    Deployment {
        transit: coordinator.transit.clone().unwrap(),
        _coordinator: coordinator,
        _dir: dir,
        config,
        name: vault.secret_id(),
    }
}

/// `requests` requests spread over `clients` connections at once; the wall time.
fn concurrent(
    runtime: &tokio::runtime::Runtime,
    deployment: &Deployment,
    clients: usize,
    requests: u64,
    path: &str,
    body: &Bytes,
) -> Duration {
    runtime.block_on(async {
        let mut senders = Vec::with_capacity(clients);
        for _ in 0..clients {
            senders.push(connect(&deployment.transit, Arc::clone(&deployment.config)).await);
        }
        let per_client = requests.div_ceil(clients as u64);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut sender in senders {
            let path = path.to_owned();
            let body = body.clone();
            tasks.spawn(async move {
                for _ in 0..per_client {
                    request(&mut sender, &path, &body).await;
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        // Criterion divides by `requests`; the extra ones of the last round cost their share.
        started
            .elapsed()
            .mul_f64(requests as f64 / (per_client * clients as u64) as f64)
    })
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deployment = deployment(&runtime);
    let encrypt_path = path("encrypt", &deployment.name);
    let decrypt_path = path("decrypt", &deployment.name);

    let mut group = c.benchmark_group("transit");
    group.measurement_time(Duration::from_secs(6));
    let engine = contrast_core::seed::SeedEngine::new(&[3; 64], &[4; 32]).unwrap();
    group.bench_function("key_derivation", |b| {
        b.iter(|| contrast_coordinator::transit::key(&engine, "default/vault", 1).unwrap());
    });
    for size in SIZES {
        group.throughput(Throughput::Elements(1));
        let plaintext = vec![0x5a; size];
        let encrypt = Bytes::from(
            serde_json::to_vec(&serde_json::json!({"plaintext": STANDARD.encode(&plaintext)}))
                .unwrap(),
        );
        let mut sender =
            runtime.block_on(connect(&deployment.transit, Arc::clone(&deployment.config)));
        let answer = runtime.block_on(request(&mut sender, &encrypt_path, &encrypt));
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let decrypt = Bytes::from(
            serde_json::to_vec(&serde_json::json!({"ciphertext": answer["data"]["ciphertext"]}))
                .unwrap(),
        );

        group.bench_with_input(
            BenchmarkId::new("encrypt_one_connection", size),
            &size,
            |b, _| {
                b.iter(|| runtime.block_on(request(&mut sender, &encrypt_path, &encrypt)));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decrypt_one_connection", size),
            &size,
            |b, _| {
                b.iter(|| runtime.block_on(request(&mut sender, &decrypt_path, &decrypt)));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("encrypt_64_clients", size),
            &size,
            |b, _| {
                b.iter_custom(|n| {
                    concurrent(&runtime, &deployment, CLIENTS, n, &encrypt_path, &encrypt)
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decrypt_64_clients", size),
            &size,
            |b, _| {
                b.iter_custom(|n| {
                    concurrent(&runtime, &deployment, CLIENTS, n, &decrypt_path, &decrypt)
                });
            },
        );

        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
        group.bench_with_input(
            BenchmarkId::new("raw_aes_256_gcm_seal", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let mut in_out = plaintext.clone();
                    key.seal_in_place_append_tag(
                        Nonce::assume_unique_for_key([1; 12]),
                        Aad::empty(),
                        &mut in_out,
                    )
                    .unwrap();
                    in_out
                });
            },
        );
        let mut sealed = plaintext.clone();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([1; 12]),
            Aad::empty(),
            &mut sealed,
        )
        .unwrap();
        group.bench_with_input(
            BenchmarkId::new("raw_aes_256_gcm_open", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let mut in_out = sealed.clone();
                    key.open_in_place(
                        Nonce::assume_unique_for_key([1; 12]),
                        Aad::empty(),
                        &mut in_out,
                    )
                    .unwrap()
                    .len()
                });
            },
        );
    }
    group.finish();
}

mod harness {
    #![allow(missing_docs)]
    use super::{Criterion, bench, criterion_group};
    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(20);
        targets = bench
    }
}

criterion_main!(harness::benches);
