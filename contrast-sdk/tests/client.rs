//! The Coordinator client against in-test gRPC servers (contrast-grpc's acceptor with fake
//! user and mesh API implementations) over aTLS on 127.0.0.1 (simulated SEV-SNP): typed round
//! trips, the server's refusals with gRPC codes, our validator's refusal, connection and
//! handshake failures, and the response size limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use contrast_attest::atls::PeerSlot;
use contrast_attest::atls::{AtlsClient, AtlsError, AtlsServer, AtlsValidator, Issuer};
use contrast_attest::{AppraisalPolicy, CrlPolicy, Error, Product, TcbVersion, Verifier};
use contrast_core::api::{
    ApiLatestTransition, ErrorCode, GetManifestsResponse, MeshCertResponse, SetManifestRequest,
    SetManifestResponse,
};
use contrast_core::manifest::GuestPolicy;
use contrast_grpc::meshapi::mesh_api_server::{MeshApi, MeshApiServer};
use contrast_grpc::server::{Acceptor, Limits};
use contrast_grpc::userapi::user_api_server::{UserApi, UserApiServer};
use contrast_grpc::{meshapi, userapi};
use contrast_sdk::{ClientError, CoordinatorClient, MAX_RESPONSE_BODY};
use contrast_sim::SimulatedIssuer;
use contrast_sim::{SimulatedGuest, SimulatedPlatform};
use rand_core::{OsRng, RngCore};
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};
use zeroize::Zeroizing;

const TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 3,
    tee: 0,
    snp: 8,
    microcode: 209,
};

fn guest_policy() -> GuestPolicy {
    GuestPolicy {
        smt: true,
        ..GuestPolicy::default()
    }
}

/// One Milan hierarchy for the whole binary (RSA-4096 generation is slow in debug builds).
fn platform() -> &'static SimulatedPlatform {
    static PLATFORM: OnceLock<SimulatedPlatform> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let not_before = SystemTime::now() - Duration::from_secs(24 * 3600);
        SimulatedPlatform::generate(Product::Milan, not_before, &mut OsRng).unwrap()
    })
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn guest(measurement: [u8; 48]) -> SimulatedGuest {
    let mut guest =
        SimulatedGuest::launched(Product::Milan, random(), TCB, measurement, &guest_policy())
            .unwrap();
    guest.host_data = random();
    guest
}

fn issuer(guest: &SimulatedGuest) -> Arc<dyn Issuer> {
    Arc::new(SimulatedIssuer::new(platform(), guest.clone()))
}

fn validator(measurement: [u8; 48]) -> AtlsValidator {
    AtlsValidator::new(Verifier::new(
        &[platform().reference_values(&measurement, &guest_policy(), TCB)],
        AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort),
    ))
}

/// Per connection: a fresh aTLS config (optionally with another ALPN list); records the slots.
struct TestAcceptor {
    atls: AtlsServer,
    alpn: Option<Vec<Vec<u8>>>,
    slots: Arc<Mutex<Vec<Arc<PeerSlot>>>>,
}

impl Acceptor for TestAcceptor {
    type Context = ();

    fn name(&self) -> &'static str {
        "test"
    }

    fn configure(&self) -> Option<(rustls::ServerConfig, Arc<PeerSlot>, ())> {
        let (mut config, slot) = self.atls.config(&mut OsRng).unwrap();
        if let Some(alpn) = &self.alpn {
            config.alpn_protocols.clone_from(alpn);
        }
        self.slots.lock().unwrap().push(Arc::clone(&slot));
        Some((config, slot, ()))
    }
}

/// A fake Coordinator: canned answers per method; records the requests it decoded.
#[derive(Clone, Default)]
struct Fake {
    set: Option<Result<userapi::SetManifestResponse, Status>>,
    get: Option<Result<userapi::GetManifestsResponse, Status>>,
    recover: Option<Result<userapi::RecoverResponse, Status>>,
    mesh_cert: Option<Result<meshapi::NewMeshCertResponse, Status>>,
    seen_set: Arc<Mutex<Vec<userapi::SetManifestRequest>>>,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

fn answer<T: Clone>(
    canned: &Option<Result<T, Status>>,
    calls: &Mutex<Vec<&'static str>>,
    method: &'static str,
) -> Result<Response<T>, Status> {
    calls.lock().unwrap().push(method);
    canned
        .clone()
        .unwrap_or_else(|| Err(Status::unimplemented(method)))
        .map(Response::new)
}

#[tonic::async_trait]
impl UserApi for Fake {
    async fn set_manifest(
        &self,
        request: Request<userapi::SetManifestRequest>,
    ) -> Result<Response<userapi::SetManifestResponse>, Status> {
        self.seen_set.lock().unwrap().push(request.into_inner());
        answer(&self.set, &self.calls, "SetManifest")
    }

    async fn get_manifests(
        &self,
        _: Request<userapi::GetManifestsRequest>,
    ) -> Result<Response<userapi::GetManifestsResponse>, Status> {
        answer(&self.get, &self.calls, "GetManifests")
    }

    async fn recover(
        &self,
        _: Request<userapi::RecoverRequest>,
    ) -> Result<Response<userapi::RecoverResponse>, Status> {
        answer(&self.recover, &self.calls, "Recover")
    }
}

#[tonic::async_trait]
impl MeshApi for Fake {
    async fn new_mesh_cert(
        &self,
        _: Request<meshapi::NewMeshCertRequest>,
    ) -> Result<Response<meshapi::NewMeshCertResponse>, Status> {
        answer(&self.mesh_cert, &self.calls, "NewMeshCert")
    }

    async fn recover(
        &self,
        _: Request<meshapi::RecoverRequest>,
    ) -> Result<Response<meshapi::RecoverResponse>, Status> {
        answer(&None, &self.calls, "MeshRecover")
    }
}

struct TestServer {
    addr: SocketAddr,
    fake: Fake,
    slots: Arc<Mutex<Vec<Arc<PeerSlot>>>>,
}

impl TestServer {
    fn calls(&self) -> Vec<&'static str> {
        self.fake.calls.lock().unwrap().clone()
    }
}

/// Serves `fake`'s user API (or, with `mesh`, its mesh API) over aTLS.
async fn serve_with(
    atls: AtlsServer,
    fake: Fake,
    alpn: Option<Vec<Vec<u8>>>,
    mesh: bool,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let slots = Arc::new(Mutex::new(Vec::new()));
    let acceptor = Arc::new(TestAcceptor {
        atls,
        alpn,
        slots: Arc::clone(&slots),
    });
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let limits = Limits::default();
    if mesh {
        let service = MeshApiServer::new(fake.clone());
        tokio::spawn(async move {
            let _stop = _stop;
            contrast_grpc::server::serve(listener, acceptor, service, limits, shutdown).await;
        });
    } else {
        let service = UserApiServer::new(fake.clone());
        tokio::spawn(async move {
            let _stop = _stop;
            contrast_grpc::server::serve(listener, acceptor, service, limits, shutdown).await;
        });
    }
    TestServer { addr, fake, slots }
}

async fn serve(atls: AtlsServer, fake: Fake) -> TestServer {
    serve_with(atls, fake, None, false).await
}

fn set_manifest_response() -> SetManifestResponse {
    SetManifestResponse {
        version: String::new(),
        root_ca: b"root pem".to_vec(),
        mesh_ca: b"mesh pem".to_vec(),
        seed_shares_doc: None,
    }
}

fn set_ok() -> Fake {
    Fake {
        set: Some(Ok(set_manifest_response().into())),
        ..Fake::default()
    }
}

#[tokio::test]
async fn typed_round_trip_over_one_attested_session() {
    let measurement = random::<48>();
    let server_guest = guest(measurement);
    let manifests = GetManifestsResponse {
        version: String::new(),
        manifests: vec![b"{}".to_vec()],
        policies: vec![],
        root_ca: b"root".to_vec(),
        mesh_ca: b"mesh".to_vec(),
        latest_transition: ApiLatestTransition {
            transition_hash: vec![7; 32],
            signature: vec![1, 2],
        },
    };
    let fake = Fake {
        get: Some(Ok(manifests.clone().into())),
        ..set_ok()
    };
    let server = serve(AtlsServer::new(Some(issuer(&server_guest))), fake).await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );

    let request = SetManifestRequest {
        manifest: b"{\"Policies\":{}}".to_vec(),
        policies: vec![b"initdata".to_vec()],
        previous_transition_hash: Some(vec![3; 32]),
        signature: None,
    };
    let session = client.connect().await.unwrap();
    let attestation = session.peer().attestation.clone().expect("appraised");
    assert_eq!(attestation.host_data, server_guest.host_data);
    assert_eq!(attestation.measurement, measurement);
    assert_eq!(
        session.set_manifest(&request).await.unwrap(),
        set_manifest_response()
    );
    assert_eq!(session.get_manifests().await.unwrap(), manifests);
    drop(session);

    assert_eq!(server.calls(), ["SetManifest", "GetManifests"]);
    // The server decoded exactly our request (PreviousTransitionHash as field 3).
    let seen = server.fake.seen_set.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(SetManifestRequest::from(seen[0].clone()), request);
    assert_eq!(seen[0].previous_transition_hash, vec![3; 32]);
    assert!(seen[0].signature.is_empty());
    // Both calls went over the one connection.
    assert_eq!(server.slots.lock().unwrap().len(), 1);

    // The convenience opens its own connection and returns the appraised peer with the value.
    let attested = client.get_manifests().await.unwrap();
    assert_eq!(attested.value, manifests);
    assert_eq!(
        attested.peer.attestation.unwrap().host_data,
        server_guest.host_data
    );
    assert_eq!(server.slots.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_calls_share_one_http2_connection() {
    let measurement = random::<48>();
    let server = serve(AtlsServer::new(Some(issuer(&guest(measurement)))), set_ok()).await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );
    let request = SetManifestRequest {
        manifest: b"{}".to_vec(),
        policies: vec![],
        previous_transition_hash: None,
        signature: None,
    };
    let session = client.connect().await.unwrap();
    let (first, second) = tokio::join!(
        session.set_manifest(&request),
        session.set_manifest(&request)
    );
    assert_eq!(first.unwrap(), set_manifest_response());
    assert_eq!(second.unwrap(), set_manifest_response());
    drop(session);
    assert_eq!(server.slots.lock().unwrap().len(), 1, "one connection");
    assert_eq!(server.calls().len(), 2);
}

#[tokio::test]
async fn a_server_without_a_common_application_protocol_is_a_handshake_error() {
    let measurement = random::<48>();
    let server = serve_with(
        AtlsServer::new(Some(issuer(&guest(measurement)))),
        set_ok(),
        Some(vec![b"http/1.1".to_vec()]),
        false,
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );
    let error = client.connect().await.unwrap_err();
    let ClientError::Handshake { reason, .. } = &error else {
        panic!("expected a handshake error, got {error:?}");
    };
    assert!(reason.contains("NoApplicationProtocol"), "{reason}");
    assert!(server.calls().is_empty());
}

#[tokio::test]
async fn mutual_atls_mesh_cert() {
    let server_measurement = random::<48>();
    let client_measurement = random::<48>();
    let client_guest = guest(client_measurement);
    let response = MeshCertResponse {
        mesh_ca_cert: b"mesh".to_vec(),
        cert_chain: b"chain".to_vec(),
        root_ca_cert: b"root".to_vec(),
        workload_secret: Zeroizing::new(vec![0x5a; 64]),
    };
    let fake = Fake {
        mesh_cert: Some(Ok(response.clone().into())),
        ..Fake::default()
    };
    let server = serve_with(
        AtlsServer::new(Some(issuer(&guest(server_measurement))))
            .with_client_validator(validator(client_measurement)),
        fake,
        None,
        true,
    )
    .await;
    // The initializer's configuration: no validator, its own issuer.
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::dangerous_without_server_attestation().with_issuer(issuer(&client_guest)),
    );
    let attested = client.mesh_cert().await.unwrap();
    assert_eq!(attested.value, response);
    assert!(attested.peer.attestation.is_none());
    assert_eq!(server.calls(), ["NewMeshCert"]);
    let slot = Arc::clone(&server.slots.lock().unwrap()[0]);
    assert_eq!(
        slot.peer().unwrap().attestation.unwrap().host_data,
        client_guest.host_data
    );
}

#[tokio::test]
async fn server_refusing_our_attestation_is_a_handshake_error() {
    let measurement = random::<48>();
    let fake = Fake {
        mesh_cert: Some(Err(Status::internal("must not be reached"))),
        ..Fake::default()
    };
    let server = serve_with(
        AtlsServer::new(Some(issuer(&guest(measurement))))
            .with_client_validator(validator(random::<48>())),
        fake,
        None,
        true,
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::dangerous_without_server_attestation()
            .with_issuer(issuer(&guest(random::<48>()))),
    );
    let error = client.mesh_cert().await.unwrap_err();
    // TLS 1.3: the server's alert arrives with the first call, and is still classified as
    // a handshake failure.
    match &error {
        ClientError::Handshake { addr, reason } => {
            assert_eq!(*addr, server.addr.to_string());
            assert!(reason.contains("received fatal alert"), "{reason}");
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert!(server.calls().is_empty());
}

#[tokio::test]
async fn refusals_keep_the_grpc_code_our_code_and_the_message() {
    let measurement = random::<48>();
    let fake = Fake {
        // Ours: upstream's code plus our code in the metadata.
        set: Some(Err(contrast_grpc::status(
            &ErrorCode::ManifestConflict,
            "coordinator state was updated concurrently",
        ))),
        recover: Some(Err(contrast_grpc::status(
            &ErrorCode::NeedsRecovery,
            "coordinator is in recovery mode",
        ))),
        // Upstream's: the gRPC code alone.
        get: Some(Err(Status::failed_precondition("no manifest configured"))),
        ..Fake::default()
    };
    let server = serve(AtlsServer::new(Some(issuer(&guest(measurement)))), fake).await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );
    let session = client.connect().await.unwrap();

    let request = SetManifestRequest {
        manifest: b"{}".to_vec(),
        policies: vec![],
        previous_transition_hash: None,
        signature: None,
    };
    let error = session.set_manifest(&request).await.unwrap_err();
    match &error {
        ClientError::Api {
            method,
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(*method, "/edgelesssys.contrast.userapi.UserAPI/SetManifest");
            assert_eq!(*status, Code::FailedPrecondition);
            assert_eq!(*code, ErrorCode::ManifestConflict);
            assert_eq!(message, "coordinator state was updated concurrently");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("refused /edgelesssys.contrast.userapi.UserAPI/SetManifest with FailedPrecondition (manifest_conflict)"),
        "{error}"
    );

    let recover = contrast_core::api::RecoverRequest {
        seed: Zeroizing::new(vec![1; 64]),
        salt: vec![2; 32],
        force: false,
        history_contains: None,
    };
    let error = session.recover(&recover).await.unwrap_err();
    assert_eq!(error.api_code(), Some(&ErrorCode::NeedsRecovery));
    assert_eq!(error.grpc_code(), Some(Code::FailedPrecondition));
    assert!(error.is_retryable());

    let error = session.get_manifests().await.unwrap_err();
    assert_eq!(
        error.api_code(),
        Some(&ErrorCode::Other("failed_precondition".into()))
    );
    assert_eq!(error.grpc_code(), Some(Code::FailedPrecondition));

    // A method the server does not implement.
    let error = session.mesh_cert().await.unwrap_err();
    assert_eq!(error.grpc_code(), Some(Code::Unimplemented));
    assert_eq!(server.slots.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn server_failing_our_validator_is_an_attestation_error() {
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(random::<48>())))),
        set_ok(),
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(random::<48>())),
    );
    let error = client.connect().await.unwrap_err();
    let ClientError::Attestation { source, .. } = &error else {
        panic!("expected an attestation error, got {error:?}");
    };
    let AtlsError::Appraisal(Error::NoReferenceValuesMatched { attempts }) = source.as_ref() else {
        panic!("expected an appraisal failure, got {source:?}");
    };
    assert!(
        matches!(
            attempts.as_slice(),
            [(0, Error::MeasurementMismatch { .. })]
        ),
        "{attempts:?}"
    );
    assert!(!error.is_retryable());
    assert!(
        error.to_string().contains("measurement mismatch"),
        "{error}"
    );
    // Nothing was sent to the unattested server.
    assert!(server.calls().is_empty());
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = CoordinatorClient::new(
        addr.clone(),
        AtlsClient::dangerous_without_server_attestation(),
    )
    .connect()
    .await
    .unwrap_err();
    match &error {
        ClientError::Connect { addr: at, source } => {
            assert_eq!(*at, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn silent_server_times_out_in_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepts and holds the connection, never answers the ClientHello.
    let holder = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(tcp);
    });
    let timeout = Duration::from_millis(300);
    let error = CoordinatorClient::new(
        addr.clone(),
        AtlsClient::dangerous_without_server_attestation(),
    )
    .with_timeouts(timeout, Duration::from_secs(5))
    .connect()
    .await
    .unwrap_err();
    match &error {
        ClientError::Timeout {
            addr: at,
            stage,
            after,
        } => {
            assert_eq!(*at, addr);
            assert_eq!(*stage, "handshake");
            assert_eq!(*after, timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(error.is_retryable());
    holder.abort();
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let measurement = random::<48>();
    let manifests = GetManifestsResponse {
        version: String::new(),
        manifests: vec![vec![b' '; 2048]],
        policies: vec![],
        root_ca: vec![],
        mesh_ca: vec![],
        latest_transition: ApiLatestTransition {
            transition_hash: vec![7; 32],
            signature: vec![],
        },
    };
    let fake = Fake {
        get: Some(Ok(manifests.clone().into())),
        ..Fake::default()
    };
    let server = serve(AtlsServer::new(Some(issuer(&guest(measurement)))), fake).await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );
    assert_eq!(MAX_RESPONSE_BODY, 32 * 1024 * 1024);
    let small = client.clone().with_max_response_body(1024);
    let error = small.get_manifests().await.unwrap_err();
    match &error {
        ClientError::Protocol { reason, .. } => {
            assert!(
                reason.contains("exceeds the limit of 1024 bytes"),
                "{reason}"
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // Within the default limit the same answer is accepted.
    assert_eq!(client.get_manifests().await.unwrap().value, manifests);
}
