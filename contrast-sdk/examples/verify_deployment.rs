//! Verify a Contrast deployment as a data owner: attest the Coordinator against the manifest you
//! expect, fetch its manifest history, check the history, and print the head and the mesh CA to
//! trust from now on.
//!
//! ```sh
//! cargo run -p contrast-sdk --example verify_deployment -- coordinator.example:1313 manifest.json
//! ```
//!
//! `cargo test -p contrast-sdk` runs this example's tests: the same [`verify`] against a
//! simulated Coordinator on loopback (a refusal included), so the example cannot rot.

use std::process::ExitCode;

use contrast_attest::AtlsClient;
use contrast_core::manifest::ManifestDocument;
use contrast_sdk::{
    CoordinatorClient, VerifiedDeployment, coordinator_validator, verify_deployment,
};

/// What can go wrong, as a boxed error with the failed check in its message.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The data owner's whole check: the Coordinator at `addr` must attest against the reference
/// values and coordinator policies of `expected`, its history must verify, and its newest
/// manifest must be `expected` (byte for byte, by hash). Returns the verified deployment and the
/// mesh CA (PEM) that the workloads' certificates chain to.
async fn verify(
    addr: &str,
    expected: &ManifestDocument,
) -> Result<(VerifiedDeployment, Vec<u8>), BoxError> {
    // Attestation happens in the TLS handshake: a Coordinator that fails appraisal never
    // answers.
    let validator = coordinator_validator(expected.manifest())?;
    let client = CoordinatorClient::new(addr, AtlsClient::new(validator));
    let response = client.get_manifests().await?;
    let deployment = verify_deployment(&response.value)?;
    let latest = deployment
        .latest_manifest()
        .ok_or("the coordinator returned no manifest")?;
    if latest.hash() != expected.hash() {
        return Err(format!(
            "the coordinator runs manifest {}, not the expected {}",
            hex::encode(latest.hash()),
            hex::encode(expected.hash())
        )
        .into());
    }
    Ok((deployment, response.value.mesh_ca))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, manifest_path] = args.as_slice() else {
        eprintln!("usage: verify_deployment <coordinator host:1313> <manifest.json>");
        return ExitCode::from(2);
    };
    let expected = match std::fs::read(manifest_path)
        .map_err(BoxError::from)
        .and_then(|raw| ManifestDocument::parse(raw).map_err(BoxError::from))
    {
        Ok(expected) => expected,
        Err(e) => {
            eprintln!("{manifest_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(verify(addr, &expected)) {
        Ok((deployment, mesh_ca)) => {
            println!(
                "verified: {} manifest(s), head {}",
                deployment.manifests.len(),
                hex::encode(deployment.latest_transition_hash)
            );
            println!("{}", String::from_utf8_lossy(&mesh_ca));
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

    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use contrast_attest::atls::AtlsServer;
    use contrast_attest::{Product, TcbVersion};
    use contrast_core::api::{ApiLatestTransition, GetManifestsResponse};
    use contrast_core::history::latest_transition_hash;
    use contrast_core::manifest::{GuestPolicy, Manifest, PolicyEntry, ReferenceValues, Role};
    use contrast_sdk::contrast_grpc::server::{Acceptor, Limits};
    use contrast_sdk::contrast_grpc::userapi;
    use contrast_sdk::contrast_grpc::userapi::user_api_server::{UserApi, UserApiServer};
    use contrast_sim::{SimulatedGuest, SimulatedIssuer, SimulatedPlatform};
    use contrast_testkit::fixtures::pem_certificate;
    use rand_core::{OsRng, RngCore};
    use tokio::net::TcpListener;

    use super::*;

    const TCB: TcbVersion = TcbVersion {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 209,
    };

    /// The simulated Coordinator's connections: aTLS with its issuer.
    struct Coordinator(AtlsServer);

    impl Acceptor for Coordinator {
        type Context = ();

        fn name(&self) -> &'static str {
            "user"
        }

        fn configure(
            &self,
        ) -> Option<(
            rustls::ServerConfig,
            Arc<contrast_attest::atls::PeerSlot>,
            (),
        )> {
            let (config, slot) = self.0.config(&mut OsRng).ok()?;
            Some((config, slot, ()))
        }
    }

    /// Answers `GetManifests` with a fixed history.
    struct History(userapi::GetManifestsResponse);

    #[tonic::async_trait]
    impl UserApi for History {
        async fn set_manifest(
            &self,
            _: tonic::Request<userapi::SetManifestRequest>,
        ) -> Result<tonic::Response<userapi::SetManifestResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("read-only"))
        }

        async fn get_manifests(
            &self,
            _: tonic::Request<userapi::GetManifestsRequest>,
        ) -> Result<tonic::Response<userapi::GetManifestsResponse>, tonic::Status> {
            Ok(tonic::Response::new(self.0.clone()))
        }

        async fn recover(
            &self,
            _: tonic::Request<userapi::RecoverRequest>,
        ) -> Result<tonic::Response<userapi::RecoverResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("read-only"))
        }
    }

    /// A simulated deployment: the manifest a data owner expects, and a Coordinator (an aTLS
    /// server on loopback, HOST_DATA = the manifest's coordinator policy) answering
    /// `GetManifests` with a one-manifest history of it. `host_data` overrides the VM's
    /// HOST_DATA (a Coordinator the manifest does not name).
    async fn simulated_coordinator(host_data: Option<[u8; 32]>) -> (String, ManifestDocument) {
        let platform = Arc::new(
            SimulatedPlatform::generate(
                Product::Milan,
                SystemTime::now() - Duration::from_secs(3600),
                &mut OsRng,
            )
            .unwrap(),
        );
        let policy = GuestPolicy {
            smt: true,
            ..GuestPolicy::default()
        };
        let mut measurement = [0u8; 48];
        OsRng.fill_bytes(&mut measurement);
        let coordinator_policy = b"coordinator initdata".to_vec();
        let policy_hash = contrast_core::sha256(&coordinator_policy);

        let manifest = Manifest {
            policies: BTreeMap::from([(
                hex::encode(policy_hash),
                PolicyEntry {
                    sans: Some(vec!["coordinator".into()]),
                    workload_secret_id: "coordinator".into(),
                    role: Role::Coordinator,
                },
            )]),
            reference_values: ReferenceValues {
                snp: vec![platform.reference_values(&measurement, &policy, TCB)],
                ..ReferenceValues::default()
            },
            ..Manifest::default()
        };
        let raw = manifest.to_go_json().unwrap();
        let expected = ManifestDocument::parse(raw.clone()).unwrap();

        let mut guest =
            SimulatedGuest::launched(Product::Milan, [7; 64], TCB, measurement, &policy).unwrap();
        guest.host_data = host_data.unwrap_or(policy_hash);
        let issuer = SimulatedIssuer::new(platform, guest)
            .with_fresh_crl(SystemTime::now())
            .unwrap();
        let server = AtlsServer::new(Some(Arc::new(issuer)));
        let response = GetManifestsResponse {
            version: String::new(),
            manifests: vec![raw.clone()],
            policies: vec![coordinator_policy],
            root_ca: pem_certificate(),
            mesh_ca: pem_certificate(),
            latest_transition: ApiLatestTransition {
                transition_hash: latest_transition_hash(&[raw]).to_vec(),
                signature: vec![0x30, 0x00],
            },
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _stop = stop;
            contrast_sdk::contrast_grpc::server::serve(
                listener,
                Arc::new(Coordinator(server)),
                UserApiServer::new(History(response.into())),
                Limits::default(),
                shutdown,
            )
            .await;
        });
        (addr, expected)
    }

    #[tokio::test]
    async fn a_simulated_deployment_verifies() {
        let (addr, expected) = simulated_coordinator(None).await;
        let (deployment, mesh_ca) = verify(&addr, &expected).await.unwrap();
        assert_eq!(deployment.manifests.len(), 1);
        assert_eq!(
            deployment.latest_transition_hash,
            latest_transition_hash(&[expected.raw().to_vec()])
        );
        assert!(
            String::from_utf8(mesh_ca)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }

    #[tokio::test]
    async fn a_coordinator_outside_the_manifest_is_refused() {
        let (addr, expected) = simulated_coordinator(Some([0xee; 32])).await;
        let error = verify(&addr, &expected).await.unwrap_err().to_string();
        assert!(error.contains("HOST_DATA"), "{error}");
    }
}
