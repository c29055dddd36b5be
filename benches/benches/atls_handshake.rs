//! One full aTLS handshake over TCP loopback, server-only and mutual, with the simulated
//! platform, next to the raw appraisal of one report in the same criterion group:
//!
//! - `mutual_atls_handshake`: per connection both sides build their aTLS configuration (fresh
//!   nonce and key), each side produces a simulated report bound to its key and the peer's nonce,
//!   and each appraises the other (chain, report, reference values) — then one byte each way.
//! - `server_atls_handshake`: the same, with only the server attesting (the user API's shape).
//! - `appraise_one_report`: `contrast_attest::Verifier::appraise` of one simulated report with its
//!   collateral, no cache — the verification work each attesting side adds to the handshake.
//! - `appraise_one_report_cached`: the same with a warm `VcekCache` (verified chain and the
//!   reference values' ID key digest memoized), as a running Coordinator appraises.
//!
//! ```sh
//! cargo bench -p contrast-benches --bench atls_handshake
//! ```
// A bench whose setup fails must stop loudly rather than time something else.
#![allow(clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contrast_attest::atls::{AtlsClient, AtlsServer, AtlsValidator, Issuer};
use contrast_attest::chain::CertRole;
use contrast_attest::collateral::CollateralMap;
use contrast_attest::{
    AppraisalPolicy, CrlPolicy, Product, TcbVersion, UnixTime, VcekCache, Verifier,
};
use contrast_core::manifest::{GuestPolicy, SnpReferenceValues};
use contrast_sim::SimulatedIssuer;
use contrast_sim::{SimulatedGuest, SimulatedPlatform};
use criterion::{Criterion, criterion_group, criterion_main};
use rand_core::{OsRng, RngCore};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

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

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn guest(measurement: [u8; 48]) -> SimulatedGuest {
    SimulatedGuest::launched(
        Product::Milan,
        random::<64>(),
        TCB,
        measurement,
        &guest_policy(),
    )
    .unwrap_or_else(|e| panic!("simulated guest: {e}"))
}

fn reference(platform: &SimulatedPlatform, measurement: [u8; 48]) -> SnpReferenceValues {
    platform.reference_values(&measurement, &guest_policy(), TCB)
}

fn policy() -> AppraisalPolicy {
    // The simulated ARK signs no CRL.
    AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort)
}

fn validator(platform: &SimulatedPlatform, measurement: [u8; 48]) -> AtlsValidator {
    AtlsValidator::new(Verifier::new(&[reference(platform, measurement)], policy()))
}

/// A loopback server that builds a fresh aTLS configuration per connection (as the
/// Coordinator's mesh API does), completes the handshake and answers one byte.
fn spawn_server(
    make_config: impl Fn() -> ServerConfig + Send + 'static,
) -> (std::net::SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            if stopped.try_recv().is_ok() {
                break;
            }
            let Ok(tcp) = tcp else { continue };
            // Small handshake flights must not wait for delayed ACKs (Nagle).
            let _ = tcp.set_nodelay(true);
            let Ok(conn) = ServerConnection::new(Arc::new(make_config())) else {
                continue;
            };
            let mut tls = StreamOwned::new(conn, tcp);
            let mut byte = [0u8; 1];
            if tls.read_exact(&mut byte).is_ok() {
                let _ = tls.write_all(&byte);
                let _ = tls.flush();
            }
        }
    });
    (addr, stop)
}

fn handshake(addr: std::net::SocketAddr, config: ClientConfig) -> bool {
    let Ok(tcp) = TcpStream::connect(addr) else {
        return false;
    };
    // Small handshake flights must not wait for delayed ACKs (Nagle).
    let _ = tcp.set_nodelay(true);
    let Ok(name) = ServerName::try_from("localhost") else {
        return false;
    };
    let Ok(conn) = ClientConnection::new(Arc::new(config), name) else {
        return false;
    };
    let mut tls = StreamOwned::new(conn, tcp);
    let mut byte = [7u8; 1];
    tls.write_all(&byte).is_ok()
        && tls.flush().is_ok()
        && tls.read_exact(&mut byte).is_ok()
        && byte == [7]
}

fn bench(c: &mut Criterion) {
    let not_before = SystemTime::now() - Duration::from_secs(24 * 3600);
    let platform = Arc::new(
        SimulatedPlatform::generate(Product::Milan, not_before, &mut OsRng)
            .unwrap_or_else(|e| panic!("simulated platform: {e}")),
    );
    let server_measurement = random::<48>();
    let client_measurement = random::<48>();
    let server_issuer: Arc<dyn Issuer> = Arc::new(SimulatedIssuer::new(
        Arc::clone(&platform),
        guest(server_measurement),
    ));
    let client_issuer: Arc<dyn Issuer> = Arc::new(SimulatedIssuer::new(
        Arc::clone(&platform),
        guest(client_measurement),
    ));

    let mutual_server = {
        let issuer = Arc::clone(&server_issuer);
        let validator = validator(&platform, client_measurement);
        spawn_server(move || {
            AtlsServer::new(Some(Arc::clone(&issuer)))
                .with_client_validator(validator.clone())
                .config(&mut OsRng)
                .map(|(config, _)| config)
                .unwrap_or_else(|e| panic!("server config: {e}"))
        })
    };
    let plain_server = {
        let issuer = Arc::clone(&server_issuer);
        spawn_server(move || {
            AtlsServer::new(Some(Arc::clone(&issuer)))
                .config(&mut OsRng)
                .map(|(config, _)| config)
                .unwrap_or_else(|e| panic!("server config: {e}"))
        })
    };
    let mutual_client = || {
        AtlsClient::new(validator(&platform, server_measurement))
            .with_issuer(Arc::clone(&client_issuer))
            .config(&mut OsRng)
            .map(|(config, _)| config)
            .unwrap_or_else(|e| panic!("client config: {e}"))
    };
    let server_only_client = || {
        AtlsClient::new(validator(&platform, server_measurement))
            .config(&mut OsRng)
            .map(|(config, _)| config)
            .unwrap_or_else(|e| panic!("client config: {e}"))
    };
    assert!(
        handshake(mutual_server.0, mutual_client()),
        "mutual aTLS handshake fails"
    );
    assert!(
        handshake(plain_server.0, server_only_client()),
        "server aTLS handshake fails"
    );

    // One report with its collateral, for the raw appraisal.
    let report_data = random::<64>();
    let report_guest = guest(server_measurement);
    let evidence = report_guest
        .evidence(&platform, &report_data)
        .unwrap_or_else(|e| panic!("evidence: {e}"));
    let mut collateral = CollateralMap::new();
    collateral.insert_vcek(
        Product::Milan,
        &report_guest.chip_id,
        &report_guest.reported_tcb,
        evidence.vcek_der.clone(),
    );
    collateral.insert_ca(Product::Milan, CertRole::Ask, evidence.ask_der.clone());
    collateral.insert_ca(Product::Milan, CertRole::Ark, evidence.ark_der.clone());
    let reference_values = [reference(&platform, server_measurement)];
    let now = UnixTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let verifier = Verifier::new(&reference_values, policy());
    assert!(
        verifier
            .appraise(now, &evidence.report, &collateral, &report_data)
            .is_ok()
    );

    let mut group = c.benchmark_group("atls");
    group.bench_function("mutual_atls_handshake", |b| {
        b.iter(|| handshake(mutual_server.0, mutual_client()))
    });
    group.bench_function("server_atls_handshake", |b| {
        b.iter(|| handshake(plain_server.0, server_only_client()))
    });
    group.bench_function("appraise_one_report", |b| {
        b.iter(|| {
            verifier
                .appraise(now, &evidence.report, &collateral, &report_data)
                .is_ok()
        })
    });
    let cached =
        Verifier::new(&reference_values, policy()).with_cache(Arc::new(VcekCache::new(16)));
    assert!(
        cached
            .appraise(now, &evidence.report, &collateral, &report_data)
            .is_ok()
    );
    group.bench_function("appraise_one_report_cached", |b| {
        b.iter(|| {
            cached
                .appraise(now, &evidence.report, &collateral, &report_data)
                .is_ok()
        })
    });
    group.finish();
    let _ = mutual_server.1.send(());
    let _ = plain_server.1.send(());
}

mod harness {
    #![allow(missing_docs)]
    use super::{Criterion, bench, criterion_group};
    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(30);
        targets = bench
    }
}

criterion_main!(harness::benches);
