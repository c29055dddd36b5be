//! The collateral client: what a cold cache costs (three requests to a KDS stand-in on
//! loopback: CA chain, VCEK, CRL, each verified, then written) against a warm one (three file
//! reads and the same verifications, no request), for one chip and TCB of a simulated
//! platform. The request counts are asserted before timing: cold 3, warm 0.
//!
//! ```sh
//! cargo bench -p contrast-benches --bench collateral
//! ```
// A bench that cannot set up has nothing to measure: it stops with the reason.
#![allow(clippy::panic)]

use std::time::{Duration, UNIX_EPOCH};

use contrast_attest::chain::{LeafKind, TrustAnchor};
use contrast_attest::collateral::CollateralRequest;
use contrast_attest::{Product, TcbVersion, UnixTime};
use contrast_kds::{ClientConfig, CollateralClient};
use contrast_sim::{CrlContents, SimulatedPlatform};
use contrast_testkit::kds::KdsStandIn;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const NOT_BEFORE: u64 = 1_704_067_200;
const CHIP: [u8; 64] = [0x5c; 64];
const TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 3,
    tee: 0,
    snp: 8,
    microcode: 115,
};

fn client(kds: &KdsStandIn, cache: &std::path::Path) -> CollateralClient {
    let client = CollateralClient::new(ClientConfig {
        kds_base: kds.url.clone(),
        cache_dir: Some(cache.to_path_buf()),
        ..ClientConfig::default()
    });
    client.unwrap_or_else(|e| panic!("client: {e}"))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let platform =
        SimulatedPlatform::generate(Product::Milan, at(NOT_BEFORE), &mut rand_core::OsRng)
            .unwrap_or_else(|e| panic!("platform: {e}"));
    let kds = runtime.block_on(KdsStandIn::start(""));
    let serve = |path: &str, body: Vec<u8>| kds.serve(path, body);
    serve(
        &format!("/vcek/v1/Milan/{}", hex::encode(CHIP)),
        platform.vcek_for(&CHIP, TCB).unwrap_or_default(),
    );
    serve(
        "/vcek/v1/Milan/cert_chain",
        platform.cert_chain_pem().unwrap_or_default().into_bytes(),
    );
    serve(
        "/vcek/v1/Milan/crl",
        platform
            .crl(&CrlContents {
                revoked: Vec::new(),
                this_update: at(NOT_BEFORE),
                next_update: at(NOT_BEFORE + 40 * 86_400),
                number: 1,
            })
            .unwrap_or_default(),
    );
    let anchor = TrustAnchor::Pinned {
        ark_der_sha256: platform.ark_fingerprint(),
        product: Product::Milan,
    };
    let now = UnixTime::from_secs(NOT_BEFORE + 86_400);
    let request = CollateralRequest::new(Product::Milan, LeafKind::Vcek, &CHIP, TCB);

    // Counted once before timing: a cold cache asks three times, a warm one never.
    let warm_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cold = client(&kds, warm_dir.path());
    let fetched = runtime.block_on(cold.vcek_collateral(&request, &anchor, now));
    assert!(fetched.is_ok(), "{:?}", fetched.err());
    assert_eq!(cold.network_requests(), 3);
    let warm = client(&kds, warm_dir.path());
    let cached = runtime.block_on(warm.vcek_collateral(&request, &anchor, now));
    assert!(cached.is_ok(), "{:?}", cached.err());
    assert_eq!(warm.network_requests(), 0);

    let mut group = c.benchmark_group("collateral_milan");
    group.bench_function("cold_cache_fetch_from_kds", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
            |dir| {
                let client = client(&kds, dir.path());
                runtime
                    .block_on(client.vcek_collateral(&request, &anchor, now))
                    .is_ok()
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("warm_cache_hit", |b| {
        b.iter(|| {
            runtime
                .block_on(warm.vcek_collateral(&request, &anchor, now))
                .is_ok()
        })
    });
    group.finish();
}

mod groups {
    // `criterion_group!` defines an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::{Criterion, bench, criterion_group};
    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(20);
        targets = bench
    }
}
criterion_main!(groups::benches);
