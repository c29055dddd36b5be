//! The collateral client against KDS and proxy stand-ins on loopback that serve real AMD
//! collateral (from the shared vectors) and a simulated platform's, and misbehave on demand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contrast_attest::chain::{LeafKind, TrustAnchor};
use contrast_attest::collateral::CollateralRequest;
use contrast_attest::{Error, Product, TcbVersion, UnixTime, UnverifiedReport};
use contrast_kds::policy::RetryPolicy;
use contrast_kds::{
    CacheEntry, ClientConfig, CollateralClient, FailureKind, Item, KdsError, Origin,
};
use contrast_sim::{CrlContents, Revocation, SimulatedPlatform};
use contrast_testkit::kds::{Fault, KdsStandIn};

const SHARED: &str = "../../shared/vectors/snp";
/// 2024-01-01: the simulated hierarchy's not_before.
const SIM_NOT_BEFORE: u64 = 1_704_067_200;
/// 2026-07-01: within the real Milan CRL 9 (thisUpdate 2026-06-22, nextUpdate 2026-08-08).
const AMD_NOW: u64 = 1_782_864_000;

// ---------------------------------------------------------------- fixtures

/// A simulated Milan platform generated once per test binary in `cell`.
fn generated(cell: &'static OnceLock<SimulatedPlatform>) -> &'static SimulatedPlatform {
    cell.get_or_init(|| {
        SimulatedPlatform::generate(
            Product::Milan,
            UNIX_EPOCH + Duration::from_secs(SIM_NOT_BEFORE),
            &mut rand_core::OsRng,
        )
        .unwrap()
    })
}

/// The platform the stand-ins serve.
fn sim_platform() -> &'static SimulatedPlatform {
    static PLATFORM: OnceLock<SimulatedPlatform> = OnceLock::new();
    generated(&PLATFORM)
}

/// Another platform: its CRL is signed by a key the anchor does not pin.
fn other_platform() -> &'static SimulatedPlatform {
    static PLATFORM: OnceLock<SimulatedPlatform> = OnceLock::new();
    generated(&PLATFORM)
}

fn sim_anchor() -> TrustAnchor {
    TrustAnchor::Pinned {
        ark_der_sha256: sim_platform().ark_fingerprint(),
        product: Product::Milan,
    }
}

const CHIP: [u8; 64] = [0x5c; 64];

fn tcb() -> TcbVersion {
    TcbVersion {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    }
}

fn sim_now() -> UnixTime {
    UnixTime::from_secs(SIM_NOT_BEFORE + 10 * 86_400)
}

fn sim_crl(
    platform: &SimulatedPlatform,
    next_update_days: u64,
    revoked: Vec<Revocation>,
) -> Vec<u8> {
    platform
        .crl(&CrlContents {
            revoked,
            this_update: UNIX_EPOCH + Duration::from_secs(SIM_NOT_BEFORE + 86_400),
            next_update: UNIX_EPOCH
                + Duration::from_secs(SIM_NOT_BEFORE + next_update_days * 86_400),
            number: 1,
        })
        .unwrap()
}

fn vcek_path(chip: &[u8; 64]) -> String {
    format!("/vcek/v1/Milan/{}", hex::encode(chip))
}

/// A KDS stand-in serving the simulated platform's collateral for [`CHIP`] at [`tcb`].
async fn sim_kds() -> KdsStandIn {
    let kds = KdsStandIn::start("").await;
    serve_sim(&kds);
    kds
}

fn serve_sim(server: &KdsStandIn) {
    let platform = sim_platform();
    server.serve(&vcek_path(&CHIP), platform.vcek_for(&CHIP, tcb()).unwrap());
    server.serve(
        "/vcek/v1/Milan/cert_chain",
        platform.cert_chain_pem().unwrap().into_bytes(),
    );
    server.serve("/vcek/v1/Milan/crl", sim_crl(platform, 40, Vec::new()));
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

fn client(
    kds: &KdsStandIn,
    proxy: Option<&KdsStandIn>,
    cache: Option<&std::path::Path>,
) -> CollateralClient {
    CollateralClient::new(ClientConfig {
        kds_base: kds.url.clone(),
        proxy: proxy.map(|p| p.url.clone()),
        proxy_attempts: 2,
        cache_dir: cache.map(std::path::Path::to_path_buf),
        timeout: Duration::from_millis(500),
        retry: fast_retry(),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn request() -> CollateralRequest<'static> {
    CollateralRequest::new(Product::Milan, LeafKind::Vcek, &CHIP, tcb())
}

fn unavailable(error: KdsError) -> (Item, Vec<contrast_kds::FetchFailure>) {
    match error {
        KdsError::Unavailable { item, attempts, .. } => (item, attempts),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn real_amd_collateral_verifies_against_the_compiled_in_roots() {
    let report_hex = std::fs::read_to_string(format!("{SHARED}/report_milan.hex")).unwrap();
    let report = hex::decode(report_hex.trim()).unwrap();
    let unverified = UnverifiedReport::from_bytes(&report).unwrap();
    let chip = *unverified.chip_id();
    let tcb = unverified.reported_tcb(Product::Milan);
    let kds = KdsStandIn::start("").await;
    kds.serve(
        &vcek_path(&chip),
        std::fs::read(format!("{SHARED}/vcek_milan.der")).unwrap(),
    );
    kds.serve(
        "/vcek/v1/Milan/cert_chain",
        std::fs::read(format!("{SHARED}/cert_chain_milan")).unwrap(),
    );
    kds.serve(
        "/vcek/v1/Milan/crl",
        std::fs::read(format!("{SHARED}/crl/milan_crl9.der")).unwrap(),
    );
    let client = client(&kds, None, None);
    let request = CollateralRequest::new(Product::Milan, LeafKind::Vcek, &chip, tcb);
    let collateral = client
        .vcek_collateral(
            &request,
            &TrustAnchor::Amd(Product::Milan),
            UnixTime::from_secs(AMD_NOW),
        )
        .await
        .unwrap();
    assert_eq!(collateral.origins.vcek, Origin::Kds);
    assert_eq!(collateral.crl_info.revoked_serials, Vec::<Vec<u8>>::new());
    // The VCEK URL is go-sev-guest's: hwid, then the SPLs as unpadded decimals.
    assert!(
        kds.log().iter().any(|r| r.starts_with(&vcek_path(&chip))
            && r.ends_with(&format!(
                "?blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
                tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
            ))),
        "{:?}",
        kds.log()
    );
}

#[tokio::test]
async fn fetched_collateral_is_cached_and_a_second_call_sends_nothing() {
    let kds = sim_kds().await;
    let cache = tempfile::tempdir().unwrap();
    let first = client(&kds, None, Some(cache.path()))
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(kds.log().len(), 3, "{:?}", kds.log());
    // A new client (a restarted process) on the same cache: no request at all.
    let again = client(&kds, None, Some(cache.path()));
    let second = again
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(again.network_requests(), 0);
    assert_eq!(kds.log().len(), 3);
    assert_eq!(
        (
            second.origins.vcek,
            second.origins.cert_chain,
            second.origins.crl
        ),
        (Origin::Cache, Origin::Cache, Origin::Cache)
    );
    assert_eq!((second.vcek, second.crl), (first.vcek, first.crl));
    // The layout mirrors the KDS's paths.
    assert!(
        cache
            .path()
            .join("vcek/v1/Milan")
            .join(hex::encode(CHIP))
            .join(format!(
                "{}.der",
                hex::encode(tcb().to_bytes(Product::Milan))
            ))
            .is_file()
    );
    assert!(cache.path().join("vcek/v1/Milan/cert_chain.pem").is_file());
    assert!(cache.path().join("vcek/v1/Milan/crl.der").is_file());
}

#[tokio::test]
async fn the_proxy_gets_the_kds_path_and_query_on_its_own_base() {
    let kds = KdsStandIn::start("").await;
    let proxy = KdsStandIn::start("/collateral").await;
    serve_sim(&proxy);
    let collateral = client(&kds, Some(&proxy), None)
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(collateral.origins.vcek, Origin::Proxy);
    assert!(kds.log().is_empty(), "{:?}", kds.log());
    assert!(
        proxy.log().contains(&format!(
            "/collateral{}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115",
            vcek_path(&CHIP)
        )),
        "{:?}",
        proxy.log()
    );
}

#[tokio::test]
async fn a_failing_proxy_is_tried_then_skipped_for_the_cooldown() {
    let kds = sim_kds().await;
    let proxy = KdsStandIn::start("").await;
    proxy.always(Fault::Status(503, None));
    let client = client(&kds, Some(&proxy), None);
    let collateral = client
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(collateral.origins.vcek, Origin::Kds);
    // Two attempts (proxy_attempts) for the first item, then the cooldown: the rest went to
    // the KDS directly.
    assert_eq!(proxy.log().len(), 2, "{:?}", proxy.log());
    assert_eq!(kds.log().len(), 3);
}

#[tokio::test]
async fn too_many_requests_is_retried_after_what_the_server_asked() {
    let kds = sim_kds().await;
    kds.fault(
        "/vcek/v1/Milan/cert_chain",
        &[Fault::Status(429, Some("0"))],
    );
    let collateral = client(&kds, None, None)
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(collateral.origins.cert_chain, Origin::Kds);
    assert_eq!(kds.log().len(), 4);

    // Asked to come back in an hour (beyond max_retry_after): no retry, and the error says so.
    let kds = sim_kds().await;
    kds.fault(
        "/vcek/v1/Milan/cert_chain",
        &[Fault::Status(429, Some("3600"))],
    );
    let error = client(&kds, None, None)
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("HTTP 429 (Retry-After 3600s)"),
        "{error}"
    );
    let (item, attempts) = unavailable(error);
    assert_eq!((item, attempts.len()), (Item::CertChain, 1));
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_limit_with_every_attempt_named() {
    let kds = sim_kds().await;
    kds.fault(
        "/vcek/v1/Milan/crl",
        &[
            Fault::Status(500, None),
            Fault::Status(502, None),
            Fault::Status(500, None),
        ],
    );
    let error = client(&kds, None, None)
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("could not get the CRL for Milan"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "KDS {}/vcek/v1/Milan/crl (attempt 3): HTTP 500",
            kds.url
        )),
        "{text}"
    );
    let (item, attempts) = unavailable(error);
    assert_eq!(item, Item::Crl);
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.origin, a.attempt))
            .collect::<Vec<_>>(),
        vec![(Origin::Kds, 1), (Origin::Kds, 2), (Origin::Kds, 3)]
    );

    // Two failures, then an answer: success.
    let kds = sim_kds().await;
    kds.fault(
        "/vcek/v1/Milan/crl",
        &[Fault::Status(500, None), Fault::Status(503, None)],
    );
    assert!(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let kds = sim_kds().await;
    kds.fault(&vcek_path(&CHIP), &[Fault::Status(404, None)]);
    let (item, attempts) = unavailable(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    assert_eq!((item, attempts.len()), (Item::Vcek, 1));
    assert_eq!(
        attempts[0].kind,
        FailureKind::Status {
            status: 404,
            retry_after: None
        }
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_timeout() {
    let kds = sim_kds().await;
    kds.always(Fault::Delay(Duration::from_secs(3)));
    let (_, attempts) = unavailable(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a.kind == FailureKind::Timeout(Duration::from_millis(500)))
    );
}

#[tokio::test]
async fn garbage_is_refused_and_never_cached() {
    let kds = sim_kds().await;
    kds.fault(
        &vcek_path(&CHIP),
        &[Fault::Body(b"<html>maintenance</html>".to_vec())],
    );
    let cache = tempfile::tempdir().unwrap();
    let (item, attempts) = unavailable(
        client(&kds, None, Some(cache.path()))
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    // An answer that does not verify ends that source: no retry.
    assert_eq!((item, attempts.len()), (Item::Vcek, 1));
    assert!(matches!(
        attempts[0].kind,
        FailureKind::Invalid(Error::CertificateParse { .. })
    ));
    assert!(
        !cache
            .path()
            .join("vcek/v1/Milan")
            .join(hex::encode(CHIP))
            .exists(),
        "garbage was cached"
    );

    // Larger than any collateral: refused without reading it all.
    let kds = sim_kds().await;
    kds.fault(&vcek_path(&CHIP), &[Fault::Body(vec![0x30; 200 * 1024])]);
    let (_, attempts) = unavailable(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    assert_eq!(attempts[0].kind, FailureKind::TooLarge { limit: 64 * 1024 });
}

#[tokio::test]
async fn another_chips_vcek_is_refused() {
    let kds = sim_kds().await;
    let other_chip = [0x77; 64];
    kds.serve(
        &vcek_path(&CHIP),
        sim_platform().vcek_for(&other_chip, tcb()).unwrap(),
    );
    let (_, attempts) = unavailable(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(
            attempts[0].kind,
            FailureKind::Invalid(Error::ChipIdMismatch { .. })
        ),
        "{attempts:?}"
    );
}

#[tokio::test]
async fn a_crl_past_next_update_or_signed_by_another_key_is_refused() {
    let kds = sim_kds().await;
    // nextUpdate 5 days after not_before; now is day 10.
    kds.serve("/vcek/v1/Milan/crl", sim_crl(sim_platform(), 5, Vec::new()));
    let (item, attempts) = unavailable(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    assert_eq!(item, Item::Crl);
    assert!(
        matches!(
            attempts[0].kind,
            FailureKind::Invalid(Error::CrlStale { .. })
        ),
        "{attempts:?}"
    );

    let kds = sim_kds().await;
    kds.serve(
        "/vcek/v1/Milan/crl",
        sim_crl(other_platform(), 40, Vec::new()),
    );
    let (_, attempts) = unavailable(
        client(&kds, None, None)
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(
            attempts[0].kind,
            FailureKind::Invalid(
                Error::CrlIssuerMismatch { .. } | Error::CertificateSignatureInvalid { .. }
            )
        ),
        "{attempts:?}"
    );
}

#[tokio::test]
async fn a_corrupt_or_stale_cache_entry_is_ignored_and_replaced() {
    let kds = sim_kds().await;
    let cache = tempfile::tempdir().unwrap();
    let disk = contrast_kds::DiskCache::new(cache.path());
    let vcek_entry = CacheEntry::Vcek {
        product: Product::Milan,
        chip_id: &CHIP,
        tcb: tcb(),
    };
    let crl_entry = CacheEntry::Crl {
        product: Product::Milan,
        kind: LeafKind::Vcek,
    };
    disk.write(&vcek_entry, b"not a certificate").unwrap();
    disk.write(&crl_entry, &sim_crl(sim_platform(), 5, Vec::new()))
        .unwrap();
    let client = client(&kds, None, Some(cache.path()));
    let collateral = client
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(
        (collateral.origins.vcek, collateral.origins.crl),
        (Origin::Kds, Origin::Kds)
    );
    assert_eq!(disk.read(&vcek_entry).unwrap(), collateral.vcek);
    assert_eq!(disk.read(&crl_entry).unwrap(), collateral.crl);
}

#[tokio::test]
async fn a_revoked_vcek_is_served_but_named_in_the_crl() {
    // The client hands out what verifies; refusing a revoked VCEK is the verifier's decision,
    // made from the CRL the client returns.
    let kds = sim_kds().await;
    let serial = sim_platform().vcek_serial(&CHIP, tcb());
    kds.serve(
        "/vcek/v1/Milan/crl",
        sim_crl(
            sim_platform(),
            40,
            vec![Revocation {
                serial: serial.clone(),
                revoked_at: SystemTime::UNIX_EPOCH + Duration::from_secs(SIM_NOT_BEFORE),
            }],
        ),
    );
    let collateral = client(&kds, None, None)
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(collateral.crl_info.revoked_serials, vec![serial]);
}

#[test]
fn bad_configuration_is_refused_with_the_field() {
    let error = CollateralClient::new(ClientConfig {
        proxy: Some("collateral-proxy:8080".to_owned()),
        ..ClientConfig::default()
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("the collateral proxy"),
        "{error}"
    );
    let error = CollateralClient::new(ClientConfig {
        kds_base: "kdsintf.amd.com".to_owned(),
        ..ClientConfig::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("the KDS base URL"), "{error}");
}

#[tokio::test]
async fn a_vlek_cannot_be_fetched() {
    let kds = sim_kds().await;
    let request = CollateralRequest::new(Product::Milan, LeafKind::Vlek, &CHIP, tcb());
    assert!(matches!(
        client(&kds, None, None)
            .vcek_collateral(&request, &sim_anchor(), sim_now())
            .await,
        Err(KdsError::VlekNotFetchable)
    ));
}

/// A test root and a `localhost` server certificate it signed, made by OpenSSL (not by us):
/// the root's DER, and the server's TLS configuration.
fn localhost_tls() -> (
    rustls_pki_types::CertificateDer<'static>,
    rustls::ServerConfig,
) {
    use rustls_pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=contrast test root"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        path("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let root = rustls_pki_types::CertificateDer::from_pem_file(path("ca.pem")).unwrap();
    let cert = rustls_pki_types::CertificateDer::from_pem_file(path("cert.pem")).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(path("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    (root, config)
}

/// The KDS is HTTPS: the client checks the server's certificate against the web PKI roots
/// and the extra roots it is given, and says so when it does not chain.
#[tokio::test]
async fn the_kds_is_reached_over_https_with_a_verified_certificate() {
    let (root, tls) = localhost_tls();
    let kds = KdsStandIn::start_tls("", tls).await;
    serve_sim(&kds);
    assert!(kds.url.starts_with("https://localhost:"));
    let config = |extra_roots| ClientConfig {
        kds_base: kds.url.clone(),
        timeout: Duration::from_secs(5),
        retry: fast_retry(),
        extra_roots,
        ..ClientConfig::default()
    };
    let collateral = CollateralClient::new(config(vec![root]))
        .unwrap()
        .vcek_collateral(&request(), &sim_anchor(), sim_now())
        .await
        .unwrap();
    assert_eq!(collateral.origins.vcek, Origin::Kds);

    // Without the root the certificate does not chain: refused, the reason named.
    let (_, attempts) = unavailable(
        CollateralClient::new(config(Vec::new()))
            .unwrap()
            .vcek_collateral(&request(), &sim_anchor(), sim_now())
            .await
            .unwrap_err(),
    );
    match &attempts[0].kind {
        FailureKind::Connect(reason) => {
            assert!(reason.contains("UnknownIssuer"), "{reason}");
        }
        other => panic!("expected a connection failure, got {other:?}"),
    }
}
