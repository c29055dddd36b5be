//! Criterion bench `history_scale` (see `BENCHMARKS.md`): how loading and verifying a history
//! from the file store grows with its length.
//!
//! For 1,000, 10,000 and 100,000 transitions (each with its own manifest of about 1 KiB) the
//! group `history_scale/<n>` times:
//!
//! - `file_store_load`: `HistoryStore::load` on a `FileStore`, as a Coordinator does at start
//!   and after recovery: read every stored transition, follow the chain, read its manifests,
//!   re-hash every blob against its name, check the signed head.
//! - `read_and_hash_files`: the floor under it: `std::fs::read` and SHA-256 of exactly the
//!   same files, one after the other, with no store, no decoding and no signature.
//!
//! The store directory is written directly in the file store's layout (`<kind>/<hex name>`)
//! without fsync, so that setting up 200,000 files takes seconds; the files are in the page
//! cache when timed, as on a Coordinator restarting on the same node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Bench setup may unwrap.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use contrast_core::hexstring;
use contrast_core::history::{LatestTransition, Transition, ZERO_HASH};
use contrast_core::seed::SeedEngine;
use contrast_core::sha256;
use contrast_store::{FileStore, FileStoreOptions, HistoryStore};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand_core::OsRng;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// Manifest `index`: upstream's layout, about 1 KiB, distinct per index.
fn manifest(index: usize) -> Vec<u8> {
    format!(
        r#"{{"Policies":{{"{index:064x}":{{"SANs":["web","*"],"WorkloadSecretID":"default/deployment/web-{index:08}","Role":""}},"{coordinator}":{{"SANs":["coordinator","*"],"WorkloadSecretID":"default/statefulset/coordinator","Role":"coordinator"}}}},"ReferenceValues":{{"snp":[{{"MinimumTCB":{{"BootloaderVersion":7,"TEEVersion":0,"SNPVersion":15,"MicrocodeVersion":72}},"ProductName":"Milan","TrustedMeasurement":"{measurement}"}}]}},"WorkloadOwnerKeyDigests":["{owner}"],"SeedshareOwnerPubKeys":["{seedshare}"]}}"#,
        coordinator = "c0".repeat(32),
        measurement = "d".repeat(96),
        owner = "a".repeat(64),
        seedshare = "b".repeat(300),
    )
    .into_bytes()
}

/// Writes a signed history of `length` transitions into `dir`; returns every blob file.
fn write_history(dir: &Path, length: usize, engine: &SeedEngine) -> Vec<PathBuf> {
    let (manifests, transitions) = (dir.join("manifests"), dir.join("transitions"));
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::create_dir_all(&transitions).unwrap();
    let mut files = Vec::with_capacity(2 * length);
    let mut previous_transition_hash = ZERO_HASH;
    for index in 0..length {
        let manifest = manifest(index);
        let manifest_hash = sha256(&manifest);
        let path = manifests.join(hexstring::encode(manifest_hash));
        std::fs::write(&path, &manifest).unwrap();
        files.push(path);
        let transition = Transition {
            manifest_hash,
            previous_transition_hash,
        }
        .encode();
        previous_transition_hash = sha256(&transition);
        let path = transitions.join(hexstring::encode(previous_transition_hash));
        std::fs::write(&path, transition).unwrap();
        files.push(path);
    }
    let head = LatestTransition::sign(
        previous_transition_hash,
        engine.history_signing_key(),
        &mut OsRng,
    )
    .unwrap();
    std::fs::write(transitions.join("latest"), head.encode()).unwrap();
    files
}

fn history_scale(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let engine = SeedEngine::new(&[0x5e; 32], &[0x5a; 32]).unwrap();
    let key = engine.history_verifying_key();
    for length in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let files = write_history(dir.path(), length, &engine);
        eprintln!(
            "history_scale: wrote {length} transitions ({} files) in {:.1} s",
            files.len() + 1,
            started.elapsed().as_secs_f64()
        );
        let store = runtime
            .block_on(FileStore::open(dir.path(), FileStoreOptions::default()))
            .unwrap();
        let history = HistoryStore::new(store);
        let loaded = runtime.block_on(history.load(&key)).unwrap().unwrap();
        assert_eq!(loaded.manifests().len(), length);

        let mut group = c.benchmark_group(format!("history_scale/{length}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(if length >= 100_000 { 30 } else { 5 }));
        group.bench_function(BenchmarkId::from_parameter("file_store_load"), |b| {
            b.iter(|| {
                let loaded = runtime.block_on(history.load(&key)).unwrap().unwrap();
                std::hint::black_box(loaded.manifests().len())
            });
        });
        group.bench_function(BenchmarkId::from_parameter("read_and_hash_files"), |b| {
            b.iter(|| {
                files.iter().fold(0u8, |acc, path| {
                    acc ^ sha256(&std::fs::read(path).unwrap())[0]
                })
            });
        });
        group.finish();
    }
}

criterion_group!(benches, history_scale);
criterion_main!(benches);
