//! `verify_history` against plain SHA-256 over the same bytes, for histories of 10, 1,000 and
//! 100,000 transitions with ~1 KiB manifests. Both run in one group per size, so the ratio is
//! measured in one run. A third function times the fixed part alone (decoding the head and
//! verifying its ECDSA P-384 signature). See `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use contrast_benches::HistoryFixture;
use contrast_core::history::{HistoryLimits, LatestTransition, verify_history};
use contrast_core::seed::SeedEngine;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_main};
use rand_core::OsRng;

const SIZES: [usize; 3] = [10, 1_000, 100_000];

fn bench_verify_history(c: &mut Criterion) {
    let engine = match SeedEngine::new(&[0x5e; 64], &[0x5a; 32]) {
        Ok(engine) => engine,
        Err(err) => return eprintln!("seed engine: {err}"),
    };
    let key = engine.history_verifying_key();

    for generation in SIZES {
        let fixture = HistoryFixture::build(generation);
        let head = match LatestTransition::sign(
            fixture.head_hash,
            engine.history_signing_key(),
            &mut OsRng,
        ) {
            Ok(head) => head.encode(),
            Err(err) => return eprintln!("signing: {err}"),
        };
        // Check once outside the timing that the fixture verifies in full.
        match verify_history(&head, &key, &fixture.blobs, HistoryLimits::default()) {
            Ok(history) if history.generation() == generation => {}
            Ok(history) => {
                return eprintln!(
                    "verified {} of {generation} transitions",
                    history.generation()
                );
            }
            Err(err) => return eprintln!("fixture does not verify: {err}"),
        }
        eprintln!(
            "history of {generation} transitions: {} blobs, {} bytes",
            fixture.blobs.len(),
            fixture.stored_bytes()
        );

        let mut group = c.benchmark_group(format!("verify_history/{generation}"));
        group.throughput(Throughput::Elements(generation as u64));
        if generation >= 100_000 {
            // One iteration takes a sizeable fraction of a second: take few, flat samples.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
            group
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(6));
        } else {
            group
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
        }
        group.bench_function(BenchmarkId::new("verify_history", generation), |b| {
            b.iter(|| {
                verify_history(
                    black_box(&head),
                    &key,
                    &fixture.blobs,
                    HistoryLimits::default(),
                )
                .map(|history| history.generation())
            });
        });
        group.bench_function(BenchmarkId::new("sha256_same_bytes", generation), |b| {
            b.iter(|| black_box(&fixture).sha256_all_blobs());
        });
        // The fixed part of verify_history: decoding the head and one ECDSA P-384 verification.
        group.bench_function(BenchmarkId::new("head_signature_only", generation), |b| {
            b.iter(|| {
                LatestTransition::decode(black_box(&head)).and_then(|head| head.verify(&key))
            });
        });
        group.finish();
    }
}

mod group {
    // `criterion_group!` defines an undocumented `pub fn`.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench_verify_history);
}
criterion_main!(group::benches);
