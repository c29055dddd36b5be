//! One conformance suite, run against every backend (memory and file): compare-and-swap,
//! content addressing, keys, list, watch, and concurrent writers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may unwrap and panic.
#![allow(clippy::needless_range_loop)] // Rounds index the per-task results.

use std::sync::Arc;
use std::time::Duration;

use contrast_core::history::BlobKind;
use contrast_core::sha256;
use contrast_store::{
    FileStore, FileStoreOptions, Key, KeyError, MemoryStore, Store, StoreError, Watch,
    configmap_name,
};
use tokio::sync::Barrier;

#[cfg(feature = "kubernetes")]
mod support;

/// A backend under test, with a way to write behind its back (as someone with write access to
/// the storage could).
trait Backend: Store + Clone {
    fn tamper(&self, key: &Key, value: &[u8]);
}

impl Backend for MemoryStore {
    fn tamper(&self, key: &Key, value: &[u8]) {
        self.overwrite_unchecked(key, value);
    }
}

impl Backend for FileStore {
    fn tamper(&self, key: &Key, value: &[u8]) {
        std::fs::write(self.path_of(key), value).unwrap();
    }
}

#[cfg(feature = "kubernetes")]
impl Backend for support::FakeBackedStore {
    fn tamper(&self, key: &Key, value: &[u8]) {
        support::FakeBackedStore::tamper(self, key, value);
    }
}

struct Fixture<S> {
    store: S,
    _dir: Option<tempfile::TempDir>,
}

async fn memory() -> Fixture<MemoryStore> {
    Fixture {
        store: MemoryStore::new(),
        _dir: None,
    }
}

/// The ConfigMap store against the in-process fake API server (see `tests/support`).
#[cfg(feature = "kubernetes")]
async fn kubernetes() -> Fixture<support::FakeBackedStore> {
    Fixture {
        store: support::FakeBackedStore::start().await,
        _dir: None,
    }
}

async fn file() -> Fixture<FileStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(
        dir.path().join("state"),
        FileStoreOptions::with_poll_interval(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    Fixture {
        store,
        _dir: Some(dir),
    }
}

fn key(key: &str) -> Key {
    Key::parse(key).unwrap()
}

fn blob_key(kind: BlobKind, value: &[u8]) -> Key {
    Key::blob(kind, &sha256(value))
}

fn assert_conflict(result: Result<(), StoreError>, expected_key: &Key) {
    match result {
        Err(StoreError::Conflict { key }) => assert_eq!(&key, expected_key),
        other => panic!("expected a conflict on {expected_key}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- compare-and-swap

/// Vector CM-cas: an absent key equals the empty value.
async fn cas_absent_equals_empty<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    let k = key("foo/bar");
    assert_eq!(store.get(&k).await.unwrap(), None);
    store.compare_and_swap(&k, b"", b"v1").await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));

    let missing = key("foo/missing");
    assert_conflict(
        store.compare_and_swap(&missing, b"v1", b"v2").await,
        &missing,
    );
    assert_eq!(store.get(&missing).await.unwrap(), None);

    assert_conflict(store.compare_and_swap(&k, b"", b"v2").await, &k);
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));
}

/// A writer whose old value is stale loses; swapping a value for itself succeeds.
async fn cas_lost_race_and_same_value<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    let k = key("transitions/latest");
    store.compare_and_swap(&k, b"", b"v1").await.unwrap();
    store.compare_and_swap(&k, b"v1", b"v2").await.unwrap();
    // A second writer that also read v1 loses.
    assert_conflict(store.compare_and_swap(&k, b"v1", b"v3").await, &k);
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    store.compare_and_swap(&k, b"v2", b"v2").await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    // Longer and shorter values replace each other whole.
    let long = vec![7u8; 10_000];
    store.compare_and_swap(&k, b"v2", &long).await.unwrap();
    store.compare_and_swap(&k, &long, b"s").await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"s"[..]));
}

/// Content-addressed keys never change, so compare-and-swap refuses them.
async fn cas_refuses_content_addressed<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    let k = blob_key(BlobKind::Manifest, b"m");
    match store.compare_and_swap(&k, b"", b"m").await {
        Err(StoreError::Immutable { key }) => assert_eq!(key, k),
        other => panic!("expected Immutable, got {other:?}"),
    }
    assert_eq!(store.get(&k).await.unwrap(), None);
}

// ---------------------------------------------------------------- content addressing

async fn put_checks_content_address<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    let k = blob_key(BlobKind::Policy, b"test-policy");
    assert_eq!(
        k.as_str(),
        "policies/48a7cea3db9b9bf087e58bdff6e7a4260a0227b90ba0fceb97060a3c76e004e1"
    );
    store.put(&k, b"test-policy").await.unwrap();
    store.put(&k, b"test-policy").await.unwrap(); // idempotent
    assert_eq!(
        store.get(&k).await.unwrap().as_deref(),
        Some(&b"test-policy"[..])
    );

    // Upstream vector: "hello" lives at tests/2cf24d…9824.
    let hello = key("tests/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    store.put(&hello, b"hello").await.unwrap();
    match store.put(&hello, b"world").await {
        Err(StoreError::ContentMismatch { key, found }) => {
            assert_eq!(key, hello);
            assert_eq!(found, sha256(b"world"));
        }
        other => panic!("expected ContentMismatch, got {other:?}"),
    }
    assert_eq!(
        store.get(&hello).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );

    let wrong = blob_key(BlobKind::Manifest, b"other");
    assert!(matches!(
        store.put(&wrong, b"value").await,
        Err(StoreError::ContentMismatch { .. })
    ));
    assert_eq!(store.get(&wrong).await.unwrap(), None);

    let mutable = Key::latest_transition();
    match store.put(&mutable, b"value").await {
        Err(StoreError::NotContentAddressed { key }) => assert_eq!(key, mutable),
        other => panic!("expected NotContentAddressed, got {other:?}"),
    }
}

async fn tampered_blob_is_detected<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    let k = blob_key(BlobKind::Transition, &[1u8; 64]);
    store.put(&k, &[1u8; 64]).await.unwrap();
    store.tamper(&k, &[2u8; 64]);
    match store.get(&k).await {
        Err(error @ StoreError::Corrupt { .. }) => {
            assert!(error.is_corruption() && !error.is_conflict());
            let StoreError::Corrupt { key, found } = error else {
                unreachable!()
            };
            assert_eq!(key, k);
            assert_eq!(found, sha256(&[2u8; 64]));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // An empty (truncated) blob is corrupt too.
    store.tamper(&k, b"");
    assert!(matches!(
        store.get(&k).await,
        Err(StoreError::Corrupt { .. })
    ));
    // Writing the blob again repairs it.
    store.put(&k, &[1u8; 64]).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Some(vec![1u8; 64]));
    // get_many reports per key.
    let absent = blob_key(BlobKind::Transition, b"absent");
    store.tamper(&k, b"x");
    let results = store.get_many(&[k.clone(), absent]).await;
    assert!(matches!(results[0], Err(StoreError::Corrupt { .. })));
    assert!(matches!(results[1], Ok(None)));
}

// ---------------------------------------------------------------- keys and list

/// Vectors CM-name and CM-name-bad, and key validation at the store boundary.
async fn keys_are_validated<S: Backend>(fixture: Fixture<S>) {
    assert_eq!(configmap_name("foo/bar").unwrap(), "contrast-store-foo-bar");
    assert_eq!(
        Key::latest_transition().configmap_name(),
        "contrast-store-transitions-latest"
    );
    assert!(matches!(
        configmap_name("foo/bar/baz"),
        Err(KeyError::NotKindSlashName { .. })
    ));
    assert!(matches!(
        configmap_name("***/***"),
        Err(KeyError::BadCharacter {
            part: "kind",
            character: '*',
            ..
        })
    ));
    assert!(matches!(
        configmap_name(""),
        Err(KeyError::NotKindSlashName { .. })
    ));
    for bad in [
        "", "a", "a/", "/b", "a/b/c", "../etc", "a/..", "a/.b", "a b/c", "a/b\n", "ä/b",
    ] {
        assert!(Key::parse(bad).is_err(), "{bad:?} must be rejected");
    }
    for good in ["a/b", "A-1/b-C", "transitions/latest", "-/-"] {
        assert!(Key::parse(good).is_ok(), "{good:?} must be accepted");
    }

    let store = fixture.store;
    for bad in ["", "a/b", "..", ".tmp", "a b"] {
        assert!(
            matches!(store.list(bad).await, Err(StoreError::InvalidKey(_))),
            "list({bad:?}) must be rejected"
        );
    }
}

async fn list_names_sorted_per_kind<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    assert_eq!(store.list("manifests").await.unwrap(), Vec::<String>::new());
    let mut expected = Vec::new();
    for manifest in [&b"one"[..], b"two", b"three"] {
        let k = blob_key(BlobKind::Manifest, manifest);
        store.put(&k, manifest).await.unwrap();
        expected.push(k.name().to_owned());
    }
    store
        .put(&blob_key(BlobKind::Policy, b"p"), b"p")
        .await
        .unwrap();
    store
        .compare_and_swap(&Key::latest_transition(), b"", b"head")
        .await
        .unwrap();
    expected.sort();
    assert_eq!(store.list("manifests").await.unwrap(), expected);
    assert_eq!(store.list("policies").await.unwrap().len(), 1);
    // Lock and temporary files of the file store are not names.
    assert_eq!(store.list("transitions").await.unwrap(), vec!["latest"]);
}

// ---------------------------------------------------------------- watch

async fn next_within(watch: &mut Watch) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("watch delivered nothing within 5 s")
        .expect("watch ended")
        .unwrap()
}

async fn watch_delivers_every_change_in_order<S: Backend>(fixture: Fixture<S>) {
    let store = fixture.store;
    let k = Key::latest_transition();

    // A watch on an absent key starts empty.
    let mut early = store.watch(&k).await.unwrap();
    assert!(early.try_next().is_none());
    store.compare_and_swap(&k, b"", b"v0").await.unwrap();
    assert_eq!(next_within(&mut early).await, b"v0");

    // A watch on an existing key starts with its value.
    let mut watch = store.watch(&k).await.unwrap();
    assert_eq!(watch.key(), &k);
    assert_eq!(next_within(&mut watch).await, b"v0");

    let mut previous = b"v0".to_vec();
    let values: Vec<Vec<u8>> = (1..=50).map(|i| format!("v{i}").into_bytes()).collect();
    for value in &values {
        store.compare_and_swap(&k, &previous, value).await.unwrap();
        previous.clone_from(value);
    }
    for watch in [&mut watch, &mut early] {
        for value in &values {
            assert_eq!(&next_within(watch).await, value);
        }
    }
    // A lost compare-and-swap and a same-value swap are not changes.
    assert!(store.compare_and_swap(&k, b"v0", b"x").await.is_err());
    store.compare_and_swap(&k, b"v50", b"v50").await.unwrap();
    store.compare_and_swap(&k, b"v50", b"v51").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v51");
    drop(early);
    store.compare_and_swap(&k, b"v51", b"v52").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v52");
}

// ---------------------------------------------------------------- concurrent writers

/// Many tasks race compare-and-swap on one key, round after round: every round has exactly one
/// winner and every other task sees a conflict.
async fn concurrent_writers_one_winner_per_round<S: Backend>(fixture: Fixture<S>) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 12;
    let store = fixture.store;
    let k = key("race/head");
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let k = k.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let old = store.get(&k).await.unwrap().unwrap_or_default();
                barrier.wait().await;
                let new = format!("round {round} task {task}").into_bytes();
                match store.compare_and_swap(&k, &old, &new).await {
                    Ok(()) => won.push(true),
                    Err(StoreError::Conflict { .. }) => won.push(false),
                    Err(other) => panic!("unexpected error: {other}"),
                }
                barrier.wait().await;
            }
            won
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for round in 0..ROUNDS {
        let winners: Vec<usize> = (0..TASKS).filter(|task| results[*task][round]).collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
    }
    let last_winner = (0..TASKS).find(|task| results[*task][ROUNDS - 1]).unwrap();
    assert_eq!(
        store.get(&k).await.unwrap().unwrap(),
        format!("round {} task {last_winner}", ROUNDS - 1).into_bytes()
    );
}

macro_rules! conformance {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::$backend().await).await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($check:ident),* $(,)?) => {
        conformance!(memory: $($check),*);
        conformance!(file: $($check),*);
        #[cfg(feature = "kubernetes")]
        conformance!(kubernetes: $($check),*);
    };
}

every_backend!(
    cas_absent_equals_empty,
    cas_lost_race_and_same_value,
    cas_refuses_content_addressed,
    put_checks_content_address,
    tampered_blob_is_detected,
    keys_are_validated,
    list_names_sorted_per_kind,
    watch_delivers_every_change_in_order,
    concurrent_writers_one_winner_per_round,
);
