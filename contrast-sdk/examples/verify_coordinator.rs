//! Verify any Contrast Coordinator through upstream's `/attest` (port 1314, plain HTTP): send a
//! fresh nonce, check the evidence against the newest manifest's reference values and the
//! history, CAs and nonce it binds, require the newest manifest to be the one you expect, and
//! print the mesh CA to trust. The response can be saved and checked again later, offline.
//!
//! ```sh
//! # online, saving what the Coordinator answered
//! cargo run -p contrast-sdk --example verify_coordinator -- fetch coordinator.example:1314 manifest.json saved/
//! # later, offline, from the saved answer
//! cargo run -p contrast-sdk --example verify_coordinator -- offline saved/ manifest.json
//! ```
//!
//! Nothing here is specific to contrast-rs: upstream's Go Coordinator answers the same request.
//! `cargo test -p contrast-sdk` runs this example's tests against a simulated Coordinator.

use std::path::Path;
use std::process::ExitCode;

use contrast_attest::UnixTime;
use contrast_core::manifest::ManifestDocument;
use contrast_sdk::{VerifiedAttestation, fetch_attestation, validate_attestation};
use rand_core::{OsRng, RngCore};

/// What can go wrong, as a boxed error with the failed check in its message.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The saved answer: the raw `/attest` body.
const SAVED_RESPONSE: &str = "attest-response.json";
/// The saved nonce the answer is bound to, hex.
const SAVED_NONCE: &str = "attest-nonce.hex";

/// Checks a `/attest` body for `nonce` and requires the newest manifest to be `expected`.
fn check(
    nonce: &[u8; 32],
    body: &[u8],
    expected: &ManifestDocument,
) -> Result<VerifiedAttestation, BoxError> {
    let verified = validate_attestation(nonce, body, UnixTime::from(std::time::SystemTime::now()))?;
    verified.deployment.check_latest_is(expected)?;
    Ok(verified)
}

/// Online: a fresh nonce, the Coordinator's answer, the check; the answer and nonce are saved
/// to `save` when given.
async fn fetch(
    addr: &str,
    expected: &ManifestDocument,
    save: Option<&Path>,
) -> Result<VerifiedAttestation, BoxError> {
    let mut nonce = [0u8; 32];
    OsRng.fill_bytes(&mut nonce);
    let body = fetch_attestation(addr, &nonce).await?;
    if let Some(dir) = save {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(SAVED_RESPONSE), &body)?;
        std::fs::write(dir.join(SAVED_NONCE), hex::encode(nonce))?;
    }
    check(&nonce, &body, expected)
}

/// Offline: the saved answer and nonce from `dir`.
fn offline(dir: &Path, expected: &ManifestDocument) -> Result<VerifiedAttestation, BoxError> {
    let body = std::fs::read(dir.join(SAVED_RESPONSE))?;
    let nonce_hex = std::fs::read_to_string(dir.join(SAVED_NONCE))?;
    let nonce: [u8; 32] = hex::decode(nonce_hex.trim())?
        .try_into()
        .map_err(|_| format!("{SAVED_NONCE} is not 32 bytes of hex"))?;
    check(&nonce, &body, expected)
}

fn read_manifest(path: &str) -> Result<ManifestDocument, BoxError> {
    Ok(ManifestDocument::parse(std::fs::read(path)?)?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fetch", addr, manifest, rest @ ..] if rest.len() <= 1 => read_manifest(manifest)
            .and_then(|expected| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(fetch(addr, &expected, rest.first().map(Path::new)))
            }),
        ["offline", dir, manifest] => {
            read_manifest(manifest).and_then(|expected| offline(Path::new(dir), &expected))
        }
        _ => {
            eprintln!(
                "usage: verify_coordinator fetch <host:1314> <manifest.json> [<save-dir>]\n       \
                 verify_coordinator offline <save-dir> <manifest.json>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(verified) => {
            println!(
                "verified: {} manifest(s), head {}, coordinator HOST_DATA {}",
                verified.deployment.manifests.len(),
                hex::encode(verified.deployment.latest_transition_hash),
                hex::encode(verified.coordinator.host_data)
            );
            println!("{}", String::from_utf8_lossy(&verified.mesh_ca));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("not verified: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::convert::Infallible;

    use contrast_core::api::{AttestRequest, AttestResponse, attest_report_data};
    use contrast_core::history::latest_transition_hash;
    use contrast_testkit::fixtures::{
        Workload, coordinator_workload, environment, manifest, pem_certificate, policies,
    };
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// A stand-in evidence API on loopback: a simulated VM with HOST_DATA `host_data` answering
    /// `/attest` over a one-manifest history, as a Coordinator does. Returns its address and the
    /// manifest.
    async fn evidence_api(host_data: [u8; 32]) -> (String, ManifestDocument) {
        let (_, env) = environment();
        let workloads = [Workload::new("web")];
        let raw = manifest(&workloads, None);
        let expected = ManifestDocument::parse(raw.clone()).unwrap();
        let issuer = env.issuer(env.guest([3; 64], host_data).unwrap());
        let (root_ca, mesh_ca) = (pem_certificate(), pem_certificate());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (issuer, raw) = (issuer.clone(), raw.clone());
                let (root_ca, mesh_ca) = (root_ca.clone(), mesh_ca.clone());
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let (issuer, raw) = (issuer.clone(), raw.clone());
                    let (root_ca, mesh_ca) = (root_ca.clone(), mesh_ca.clone());
                    async move {
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let request: AttestRequest = serde_json::from_slice(&body).unwrap();
                        let nonce: [u8; 32] = request.nonce.try_into().unwrap();
                        let manifests = vec![raw];
                        let report_data = attest_report_data(
                            &nonce,
                            &latest_transition_hash(&manifests),
                            &root_ca,
                            &mesh_ca,
                        );
                        let response = AttestResponse {
                            version: "stand-in".into(),
                            raw_attestation_doc: issuer.issue(&report_data).unwrap(),
                            attestation_type: issuer.oid().arcs().map(u64::from).collect(),
                            manifests,
                            policies: policies(&[Workload::new("web")]),
                            root_ca,
                            mesh_ca,
                        };
                        let body = Bytes::from(serde_json::to_vec(&response).unwrap());
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(body)))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        (addr, expected)
    }

    #[tokio::test]
    async fn online_then_offline_from_the_saved_answer() {
        let (addr, expected) = evidence_api(coordinator_workload().host_data()).await;
        let saved = tempfile::tempdir().unwrap();
        let online = fetch(&addr, &expected, Some(saved.path())).await.unwrap();
        assert_eq!(
            online.coordinator.host_data,
            coordinator_workload().host_data()
        );
        let offline = offline(saved.path(), &expected).unwrap();
        assert_eq!(
            offline.deployment.latest_transition_hash,
            online.deployment.latest_transition_hash
        );
        // The saved answer is bound to its nonce: another nonce does not verify it.
        std::fs::write(saved.path().join(SAVED_NONCE), hex::encode([9u8; 32])).unwrap();
        let error = super::offline(saved.path(), &expected)
            .unwrap_err()
            .to_string();
        assert!(error.contains("report data"), "{error}");
    }

    #[tokio::test]
    async fn a_coordinator_outside_the_manifest_is_refused() {
        let (addr, expected) = evidence_api([0xee; 32]).await;
        let error = fetch(&addr, &expected, None).await.unwrap_err().to_string();
        assert!(error.contains("HOST_DATA"), "{error}");
    }

    #[tokio::test]
    async fn another_manifest_than_expected_is_refused() {
        let (addr, _) = evidence_api(coordinator_workload().host_data()).await;
        let other = ManifestDocument::parse(manifest(&[Workload::new("other")], None)).unwrap();
        let error = fetch(&addr, &other, None).await.unwrap_err().to_string();
        assert!(error.contains("not the expected"), "{error}");
    }
}
