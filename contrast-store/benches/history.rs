//! Criterion benches of the history store (see `BENCHMARKS.md`):
//!
//! - `history_load/1000x50`: load and verify a history of 1,000 manifests, each naming 50
//!   policies, from the file store; the same from the memory store; and contrast-core's
//!   `verify_history` over an in-memory map as the baseline. One function also reads every
//!   policy the manifests name.
//! - `cas_round_trip`: one compare-and-swap of `transitions/latest`, file vs memory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Bench setup may unwrap.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use contrast_core::hexstring;
use contrast_core::history::{BlobKind, HistoryLimits, LATEST_TRANSITION_KEY, verify_history};
use contrast_core::manifest::ManifestDocument;
use contrast_core::seed::SeedEngine;
use contrast_core::sha256;
use contrast_store::{FileStore, FileStoreOptions, HistoryStore, Key, MemoryStore, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use rand_core::OsRng;

const MANIFESTS: usize = 1_000;
const POLICIES_PER_MANIFEST: usize = 50;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Manifest `index` names 50 policies: 45 shared by every manifest (the stable workloads) and
/// 5 of its own (the workloads that changed in this update).
fn policies_of(index: usize) -> Vec<Vec<u8>> {
    (0..POLICIES_PER_MANIFEST)
        .map(|slot| {
            let owner = if slot < 45 {
                "shared".to_owned()
            } else {
                format!("manifest {index}")
            };
            format!(
                "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"policy.rego\" = \"\"\"\npackage agent_policy\n# {owner} workload {slot}\n{}\"\"\"\n",
                "default AllowRequestsFailingPolicy := false\n".repeat(20)
            )
            .into_bytes()
        })
        .collect()
}

fn manifest_of(index: usize, policies: &[Vec<u8>]) -> ManifestDocument {
    let entries: Vec<String> = policies
        .iter()
        .enumerate()
        .map(|(slot, policy)| {
            format!(
                r#""{}":{{"SANs":["workload-{slot}","*"],"WorkloadSecretID":"default/deployment/workload-{slot}-{index}","Role":""}}"#,
                hexstring::encode(sha256(policy))
            )
        })
        .collect();
    let json = format!(
        r#"{{"Policies":{{{}}},"ReferenceValues":{{"snp":[{{"MinimumTCB":{{"BootloaderVersion":7,"TEEVersion":0,"SNPVersion":15,"MicrocodeVersion":72}},"ProductName":"Milan","TrustedMeasurement":"{}"}}]}},"WorkloadOwnerPubKeys":null,"SeedshareOwnerPubKeys":null}}"#,
        entries.join(","),
        "d".repeat(96)
    );
    ManifestDocument::parse(json.into_bytes()).unwrap()
}

/// Writes the history through `HistoryStore::update`, as the Coordinator would.
async fn build<S: Store>(history: &HistoryStore<S>, engine: &SeedEngine) {
    let mut head = None;
    for index in 0..MANIFESTS {
        let policies = policies_of(index);
        let manifest = manifest_of(index, &policies);
        let update = history
            .update(
                head.as_ref(),
                &manifest,
                &policies,
                None,
                engine.history_signing_key(),
                &mut OsRng,
            )
            .await
            .unwrap();
        head = Some(update.latest);
    }
}

/// Copies every key of the file store into a memory store.
async fn copy_to_memory(file: &FileStore) -> MemoryStore {
    let memory = MemoryStore::new();
    for kind in [BlobKind::Manifest, BlobKind::Policy, BlobKind::Transition] {
        for name in file.list(kind.as_str()).await.unwrap() {
            let key = Key::from_parts(kind.as_str(), &name).unwrap();
            let value = file.get(&key).await.unwrap().unwrap();
            if key.content_hash().is_some() {
                memory.put(&key, &value).await.unwrap();
            } else {
                memory.compare_and_swap(&key, b"", &value).await.unwrap();
            }
        }
    }
    memory
}

fn policy_hashes_of(history: &contrast_core::history::VerifiedHistory<'_>) -> Vec<[u8; 32]> {
    let mut hashes = BTreeSet::new();
    for manifest in history.manifests() {
        let document = ManifestDocument::parse(manifest.to_vec()).unwrap();
        for key in document.manifest().policies.keys() {
            hashes.insert(hexstring::decode_array::<32>(key).unwrap());
        }
    }
    hashes.into_iter().collect()
}

fn history_load(c: &mut Criterion) {
    let runtime = runtime();
    let engine = SeedEngine::new(&[0x5e; 32], &[0x5a; 32]).unwrap();
    let key = engine.history_verifying_key();
    let dir = tempfile::tempdir().unwrap();
    let file = runtime
        .block_on(FileStore::open(dir.path(), FileStoreOptions::default()))
        .unwrap();
    let file_history = HistoryStore::new(file.clone());
    let started = std::time::Instant::now();
    runtime.block_on(build(&file_history, &engine));
    eprintln!(
        "built {MANIFESTS} manifests x {POLICIES_PER_MANIFEST} policies in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let memory_history = HistoryStore::new(runtime.block_on(copy_to_memory(&file)));

    // The baseline: the same blobs in a plain map, verified by contrast-core directly.
    let mut blobs = HashMap::new();
    let head = std::fs::read(dir.path().join(LATEST_TRANSITION_KEY)).unwrap();
    let loaded = runtime.block_on(file_history.load(&key)).unwrap().unwrap();
    assert_eq!(loaded.generation(), MANIFESTS);
    for entry in &loaded.entries {
        blobs.insert(
            (BlobKind::Transition, entry.transition_hash),
            entry.transition.encode().to_vec(),
        );
        blobs.insert(
            (BlobKind::Manifest, entry.transition.manifest_hash),
            entry.manifest.to_vec(),
        );
    }
    let all_policies = policy_hashes_of(&loaded);
    eprintln!(
        "{} distinct policies, {} manifest bytes",
        all_policies.len(),
        loaded.manifests().map(<[u8]>::len).sum::<usize>()
    );

    let mut group = c.benchmark_group(format!("history_load/{MANIFESTS}x{POLICIES_PER_MANIFEST}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("file_load_verify", |b| {
        b.iter(|| {
            let history = runtime.block_on(file_history.load(&key)).unwrap().unwrap();
            assert_eq!(history.generation(), MANIFESTS);
        });
    });
    group.bench_function("file_load_verify_and_policies", |b| {
        b.iter(|| {
            let history = runtime.block_on(file_history.load(&key)).unwrap().unwrap();
            let hashes = policy_hashes_of(&history);
            let policies = runtime.block_on(file_history.policies(&hashes)).unwrap();
            assert_eq!(policies.len(), all_policies.len());
        });
    });
    group.bench_function("memory_load_verify", |b| {
        b.iter(|| {
            let history = runtime
                .block_on(memory_history.load(&key))
                .unwrap()
                .unwrap();
            assert_eq!(history.generation(), MANIFESTS);
        });
    });
    group.bench_function("core_verify_history_map", |b| {
        b.iter(|| {
            let history = verify_history(&head, &key, &blobs, HistoryLimits::default()).unwrap();
            assert_eq!(history.generation(), MANIFESTS);
        });
    });
    group.finish();
}

fn cas_round_trip(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let file = runtime
        .block_on(FileStore::open(dir.path(), FileStoreOptions::default()))
        .unwrap();
    let memory = MemoryStore::new();
    let key = Key::latest_transition();
    // A head-sized value (hash + DER signature), alternating between two contents.
    let values = [vec![0xa5u8; 135], vec![0x5au8; 135]];

    let mut group = c.benchmark_group("cas_round_trip");
    group.sample_size(20);
    let mut round = 0usize;
    runtime
        .block_on(file.compare_and_swap(&key, b"", &values[0]))
        .unwrap();
    group.bench_function("file", |b| {
        b.iter(|| {
            let (old, new) = (&values[round % 2], &values[(round + 1) % 2]);
            runtime
                .block_on(file.compare_and_swap(&key, old, new))
                .unwrap();
            round += 1;
        });
    });
    let mut round = 0usize;
    runtime
        .block_on(memory.compare_and_swap(&key, b"", &values[0]))
        .unwrap();
    group.bench_function("memory", |b| {
        b.iter(|| {
            let (old, new) = (&values[round % 2], &values[(round + 1) % 2]);
            runtime
                .block_on(memory.compare_and_swap(&key, old, new))
                .unwrap();
            round += 1;
        });
    });
    group.finish();
}

criterion_group!(benches, history_load, cas_round_trip);
criterion_main!(benches);
