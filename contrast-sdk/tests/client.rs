//! The Coordinator client against an in-test HTTP server over aTLS on 127.0.0.1 (simulated
//! SEV-SNP): typed round trips, the server's refusals, our validator's refusal, connection and
//! handshake failures, and the response size limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use contrast_attest::atls::PeerSlot;
use contrast_attest::atls::{AtlsClient, AtlsError, AtlsServer, AtlsValidator, Issuer};
use contrast_attest::{AppraisalPolicy, CrlPolicy, Error, Product, TcbVersion, Verifier};
use contrast_core::api::{
    ApiLatestTransition, ErrorCode, ErrorResponse, GetManifestsResponse, MeshCertResponse,
    SetManifestRequest, SetManifestResponse, path,
};
use contrast_core::manifest::GuestPolicy;
use contrast_sdk::{ClientError, CoordinatorClient, MAX_RESPONSE_BODY, Method};
use contrast_sim::SimulatedIssuer;
use contrast_sim::{SimulatedGuest, SimulatedPlatform};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand_core::{OsRng, RngCore};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
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

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    version: hyper::Version,
    /// `Host` (HTTP/1.1) or the URI's authority (HTTP/2).
    authority: Option<String>,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

type Handler = Arc<dyn Fn(&Seen) -> (StatusCode, Vec<u8>) + Send + Sync>;

/// A test server: HTTP over aTLS (HTTP/1.1 or HTTP/2, as negotiated, like the Coordinator),
/// one fresh config per connection; records requests and each connection's peer slot.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    slots: Arc<Mutex<Vec<Arc<PeerSlot>>>>,
}

async fn serve(atls: AtlsServer, handler: Handler) -> TestServer {
    serve_alpn(atls, handler, None).await
}

/// [`serve`], with the server's ALPN list replaced by `alpn` when given.
async fn serve_alpn(atls: AtlsServer, handler: Handler, alpn: Option<Vec<Vec<u8>>>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let slots = Arc::new(Mutex::new(Vec::new()));
    let (seen_task, slots_task) = (Arc::clone(&seen), Arc::clone(&slots));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (mut config, slot) = atls.config(&mut OsRng).unwrap();
            if let Some(alpn) = &alpn {
                config.alpn_protocols.clone_from(alpn);
            }
            slots_task.lock().unwrap().push(slot);
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let handler = Arc::clone(&handler);
            let seen = Arc::clone(&seen_task);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: Request<Incoming>| {
                    let handler = Arc::clone(&handler);
                    let seen = Arc::clone(&seen);
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        let request = Seen {
                            method: parts.method,
                            version: parts.version,
                            authority: parts
                                .headers
                                .get(hyper::header::HOST)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .or_else(|| parts.uri.authority().map(ToString::to_string)),
                            path: parts.uri.path().to_owned(),
                            content_type: parts
                                .headers
                                .get(hyper::header::CONTENT_TYPE)
                                .map(|v| v.to_str().unwrap().to_owned()),
                            body,
                        };
                        let (status, body) = handler(&request);
                        seen.lock().unwrap().push(request);
                        let response = Response::builder()
                            .status(status)
                            .header(hyper::header::CONTENT_TYPE, "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                if tls.get_ref().1.alpn_protocol() == Some(b"http/1.1") {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    });
    TestServer { addr, seen, slots }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn error_body(code: ErrorCode, message: &str) -> (StatusCode, Vec<u8>) {
    let body = ErrorResponse::new(code, message);
    (StatusCode::from_u16(body.status_code).unwrap(), json(&body))
}

fn set_manifest_response() -> SetManifestResponse {
    SetManifestResponse {
        version: "test".into(),
        root_ca: b"root pem".to_vec(),
        mesh_ca: b"mesh pem".to_vec(),
        seed_shares_doc: None,
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
    let manifests_body = json(&manifests);
    let server = serve(
        AtlsServer::new(Some(issuer(&server_guest))),
        Arc::new(move |seen: &Seen| match seen.path.as_str() {
            path::SET_MANIFEST => (StatusCode::OK, json(&set_manifest_response())),
            path::GET_MANIFESTS => (StatusCode::OK, manifests_body.clone()),
            _ => error_body(ErrorCode::InvalidArgument, "unexpected path"),
        }),
    )
    .await;
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

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    // Our client offers HTTP/1.1 and the server prefers it; the authority goes in `Host`.
    for request in &seen {
        assert_eq!(request.version, hyper::Version::HTTP_11);
        assert_eq!(request.authority, Some(server.addr.to_string()));
    }
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, "/v1/manifest");
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<SetManifestRequest>(&seen[0].body).unwrap(),
        request
    );
    assert_eq!(seen[1].method, Method::GET);
    assert_eq!(seen[1].path, "/v1/manifests");
    assert!(seen[1].body.is_empty());
    // Both calls went over the one connection.
    assert_eq!(server.slots.lock().unwrap().len(), 1);

    // The convenience opens its own connection and returns the appraised peer with the value.
    let attested = client.get_manifests().await.unwrap();
    assert_eq!(attested.value, manifests);
    assert_eq!(
        attested.peer.attestation.unwrap().host_data,
        server_guest.host_data
    );
}

/// Two calls at once on one session, against a server whose ALPN list is `alpn`; returns
/// the HTTP version each request arrived with.
async fn concurrent_calls_on_one_session(alpn: Option<Vec<Vec<u8>>>) -> Vec<hyper::Version> {
    let measurement = random::<48>();
    let server_guest = guest(measurement);
    let server = serve_alpn(
        AtlsServer::new(Some(issuer(&server_guest))),
        Arc::new(|seen: &Seen| match seen.path.as_str() {
            path::SET_MANIFEST => (StatusCode::OK, json(&set_manifest_response())),
            _ => error_body(ErrorCode::InvalidArgument, "unexpected path"),
        }),
        alpn,
    )
    .await;
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
    let seen = server.seen.lock().unwrap().clone();
    for request in &seen {
        assert_eq!(request.authority, Some(server.addr.to_string()));
    }
    seen.iter().map(|request| request.version).collect()
}

#[tokio::test]
async fn concurrent_calls_on_one_http11_session_take_turns() {
    let versions = concurrent_calls_on_one_session(None).await;
    assert_eq!(versions, [hyper::Version::HTTP_11; 2]);
}

#[tokio::test]
async fn a_server_that_speaks_only_h2_gets_http2() {
    // Upstream's servers negotiate only `h2`; the client follows the server's choice.
    let versions = concurrent_calls_on_one_session(Some(vec![b"h2".to_vec()])).await;
    assert_eq!(versions, [hyper::Version::HTTP_2; 2]);
}

#[tokio::test]
async fn a_server_without_a_common_application_protocol_is_a_handshake_error() {
    let measurement = random::<48>();
    let server_guest = guest(measurement);
    let server = serve_alpn(
        AtlsServer::new(Some(issuer(&server_guest))),
        Arc::new(|_: &Seen| (StatusCode::OK, Vec::new())),
        Some(vec![b"spdy/3".to_vec()]),
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
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn mutual_atls_mesh_cert_and_empty_body_request() {
    let server_measurement = random::<48>();
    let client_measurement = random::<48>();
    let client_guest = guest(client_measurement);
    let response = MeshCertResponse {
        mesh_ca_cert: b"mesh".to_vec(),
        cert_chain: b"chain".to_vec(),
        root_ca_cert: b"root".to_vec(),
        workload_secret: Zeroizing::new(vec![0x5a; 64]),
    };
    let body = json(&response);
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(server_measurement))))
            .with_client_validator(validator(client_measurement)),
        Arc::new(move |_: &Seen| (StatusCode::OK, body.clone())),
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
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/v1/mesh/cert");
    assert_eq!(seen[0].body, b"{}");
    let slot = Arc::clone(&server.slots.lock().unwrap()[0]);
    assert_eq!(
        slot.peer().unwrap().attestation.unwrap().host_data,
        client_guest.host_data
    );
}

#[tokio::test]
async fn server_refusing_our_attestation_is_a_handshake_error() {
    let measurement = random::<48>();
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(measurement))))
            .with_client_validator(validator(random::<48>())),
        Arc::new(|_: &Seen| (StatusCode::OK, b"{}".to_vec())),
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::dangerous_without_server_attestation()
            .with_issuer(issuer(&guest(random::<48>()))),
    );
    let error = client.mesh_cert().await.unwrap_err();
    // TLS 1.3: the server's alert arrives with the first request, and is still classified as
    // a handshake failure.
    match &error {
        ClientError::Handshake { addr, reason } => {
            assert_eq!(*addr, server.addr.to_string());
            assert!(reason.contains("received fatal alert"), "{reason}");
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn api_errors_keep_code_and_message() {
    let measurement = random::<48>();
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(measurement)))),
        Arc::new(|seen: &Seen| match seen.path.as_str() {
            path::MESH_CERT => error_body(
                ErrorCode::PermissionDenied,
                "policy hash 00ff not found in manifest",
            ),
            path::GET_MANIFESTS => (
                StatusCode::IM_A_TEAPOT,
                br#"{"status_code":418,"code":"teapot","error":"short and stout"}"#.to_vec(),
            ),
            path::RECOVER => {
                error_body(ErrorCode::NeedsRecovery, "coordinator is in recovery mode")
            }
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                b"upstream unavailable".to_vec(),
            ),
        }),
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );

    let error = client.mesh_cert().await.unwrap_err();
    match &error {
        ClientError::Api {
            path,
            status,
            error,
            ..
        } => {
            assert_eq!(path, "/v1/mesh/cert");
            assert_eq!(*status, 403);
            assert_eq!(error.code, ErrorCode::PermissionDenied);
            assert_eq!(error.error, "policy hash 00ff not found in manifest");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert_eq!(error.api_code(), Some(&ErrorCode::PermissionDenied));
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("refused /v1/mesh/cert with status 403"),
        "{error}"
    );

    let error = client.get_manifests().await.unwrap_err();
    assert_eq!(error.api_code(), Some(&ErrorCode::Other("teapot".into())));

    let session = client.connect().await.unwrap();
    let error = session
        .call::<_, serde_json::Value>(Method::POST, path::RECOVER, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.api_code(), Some(&ErrorCode::NeedsRecovery));
    assert!(error.is_retryable());

    // A non-JSON error body (e.g. from a proxy) keeps the status and the text.
    let error = session
        .call::<_, serde_json::Value>(Method::POST, "/elsewhere", &serde_json::json!({}))
        .await
        .unwrap_err();
    match &error {
        ClientError::Api { status, error, .. } => {
            assert_eq!(*status, 503);
            assert_eq!(error.code, ErrorCode::Other("http_503".into()));
            assert_eq!(error.error, "upstream unavailable");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn undecodable_success_body_is_a_decode_error() {
    let measurement = random::<48>();
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(measurement)))),
        Arc::new(|_: &Seen| (StatusCode::OK, br#"{"root_ca":"!!"}"#.to_vec())),
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );
    match client.get_manifests().await.unwrap_err() {
        ClientError::Decode { what, .. } => assert_eq!(what, "GetManifestsResponse"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_failing_our_validator_is_an_attestation_error() {
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(random::<48>())))),
        Arc::new(|_: &Seen| (StatusCode::OK, b"{}".to_vec())),
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
    assert!(server.seen.lock().unwrap().is_empty());
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
    let server = serve(
        AtlsServer::new(Some(issuer(&guest(measurement)))),
        Arc::new(|seen: &Seen| match seen.path.as_str() {
            "/huge" => (StatusCode::OK, vec![b' '; MAX_RESPONSE_BODY + 1]),
            _ => (StatusCode::OK, vec![b' '; 2048]),
        }),
    )
    .await;
    let client = CoordinatorClient::new(
        server.addr.to_string(),
        AtlsClient::new(validator(measurement)),
    );
    let session = client.connect().await.unwrap();
    let error = session
        .call::<_, serde_json::Value>(Method::POST, "/huge", &())
        .await
        .unwrap_err();
    match &error {
        ClientError::Protocol { reason, .. } => assert!(
            reason.contains(&format!("exceeds the limit of {MAX_RESPONSE_BODY} bytes")),
            "{reason}"
        ),
        other => panic!("expected a protocol error, got {other:?}"),
    }

    let small = client.clone().with_max_response_body(1024);
    let session = small.connect().await.unwrap();
    let error = session
        .call::<_, serde_json::Value>(Method::POST, "/small", &())
        .await
        .unwrap_err();
    match &error {
        ClientError::Protocol { reason, .. } => {
            assert!(
                reason.contains("exceeds the limit of 1024 bytes"),
                "{reason}"
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // Within the limit the same body is accepted (2048 spaces are not JSON: a decode error).
    let session = client.connect().await.unwrap();
    assert!(matches!(
        session
            .call::<_, serde_json::Value>(Method::POST, "/small", &())
            .await,
        Err(ClientError::Decode { what: "Value", .. })
    ));
}
