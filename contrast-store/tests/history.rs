//! The history store on both backends: updates, verified loads, conflicts kept apart from
//! corruption, UpdateState's checks, and tampering with every file on disk.
#![allow(clippy::unwrap_used, clippy::panic)] // Tests may unwrap and panic.

use std::sync::OnceLock;
use std::time::Duration;

use contrast_core::hexstring;
use contrast_core::history::{
    BlobKind, Hash, HistoryError, LatestTransition, MalformedHeadReason, ZERO_HASH,
    latest_transition_hash,
};
use contrast_core::manifest::ManifestDocument;
use contrast_core::seed::SeedEngine;
use contrast_core::sha256;
use contrast_store::{
    FileStore, FileStoreOptions, HistoryStore, HistoryStoreError, Key, MemoryStore, Store,
};
use rand_core::OsRng;

fn engine() -> &'static SeedEngine {
    static ENGINE: OnceLock<SeedEngine> = OnceLock::new();
    ENGINE.get_or_init(|| SeedEngine::new(&[0x5e; 32], &[0x5a; 32]).unwrap())
}

fn other_engine() -> &'static SeedEngine {
    static ENGINE: OnceLock<SeedEngine> = OnceLock::new();
    ENGINE.get_or_init(|| SeedEngine::new(&[0x01; 32], &[0x02; 32]).unwrap())
}

fn manifest(policies: &[Vec<u8>], tag: &str) -> ManifestDocument {
    let entries: Vec<String> = policies
        .iter()
        .map(|policy| {
            format!(
                r#""{}":{{"SANs":["{tag}"],"WorkloadSecretID":"{tag}","Role":""}}"#,
                hexstring::encode(sha256(policy))
            )
        })
        .collect();
    let json = format!(
        r#"{{"Policies":{{{}}},"ReferenceValues":{{}},"WorkloadOwnerPubKeys":null,"SeedshareOwnerPubKeys":null}}"#,
        entries.join(",")
    );
    ManifestDocument::parse(json.into_bytes()).unwrap()
}

/// Appends `count` manifests; returns them (oldest first) and the last head.
async fn grow<S: Store>(
    history: &HistoryStore<S>,
    mut head: Option<LatestTransition>,
    count: usize,
    tag: &str,
) -> (Vec<Vec<u8>>, Option<LatestTransition>) {
    let mut manifests = Vec::new();
    for index in 0..count {
        let policies = vec![b"shared".to_vec(), format!("{tag} {index}").into_bytes()];
        let document = manifest(&policies, &format!("{tag}-{index}"));
        let update = history
            .update(
                head.as_ref(),
                &document,
                &policies,
                None,
                engine().history_signing_key(),
                &mut OsRng,
            )
            .await
            .unwrap();
        assert_eq!(update.policy_hashes.len(), 2);
        manifests.push(document.into_raw());
        head = Some(update.latest);
    }
    (manifests, head)
}

async fn file_history() -> (HistoryStore<FileStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(
        dir.path(),
        FileStoreOptions::with_poll_interval(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    (HistoryStore::new(store), dir)
}

// ---------------------------------------------------------------- both backends

async fn updates_build_a_verified_history<S: Store>(history: HistoryStore<S>) {
    let key = engine().history_verifying_key();
    assert!(!history.has_latest().await.unwrap());
    assert_eq!(history.latest(&key).await.unwrap(), None);
    assert_eq!(history.load(&key).await.unwrap(), None);

    let (manifests, head) = grow(&history, None, 5, "a").await;
    let head = head.unwrap();
    assert!(history.has_latest().await.unwrap());
    assert_eq!(history.latest(&key).await.unwrap().as_ref(), Some(&head));
    assert_eq!(
        history.latest_unverified().await.unwrap().as_ref(),
        Some(&head)
    );
    // The client-side rebuild from the manifest list gives the signed head hash.
    assert_eq!(head.transition_hash, latest_transition_hash(&manifests));

    let loaded = history.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.generation(), 5);
    assert_eq!(loaded.head, head);
    assert_eq!(loaded.manifests().collect::<Vec<_>>(), manifests);

    let walked = history.walk(&head.transition_hash).await.unwrap();
    assert_eq!(walked.len(), 5);
    assert_eq!(walked[0].transition_hash, head.transition_hash);
    assert!(walked[4].transition.is_genesis());
    assert!(history.walk(&ZERO_HASH).await.unwrap().is_empty());
    let genesis = walked[4].transition_hash;
    assert!(
        history
            .chain_contains(&head.transition_hash, &genesis)
            .await
            .unwrap()
    );
    assert!(
        !history
            .chain_contains(&genesis, &head.transition_hash)
            .await
            .unwrap()
    );

    let policies = history
        .policies(&[sha256(b"shared"), sha256(b"a 3")])
        .await
        .unwrap();
    assert_eq!(policies, vec![b"shared".to_vec(), b"a 3".to_vec()]);
    match history.policies(&[sha256(b"never stored")]).await {
        Err(HistoryStoreError::MissingPolicy { policy_hash }) => {
            assert_eq!(policy_hash, hexstring::encode(sha256(b"never stored")));
        }
        other => panic!("expected MissingPolicy, got {other:?}"),
    }
}

/// A writer that builds on a head someone else already replaced gets a conflict, not a
/// corruption; the history stays linear.
async fn conflict_is_distinct_and_history_stays_linear<S: Store>(history: HistoryStore<S>) {
    let key = engine().history_verifying_key();
    let (_, head) = grow(&history, None, 1, "base").await;
    let seen_by_both = head.unwrap();
    let (_, winner) = grow(&history, Some(seen_by_both.clone()), 1, "winner").await;

    let policies = vec![b"loser".to_vec()];
    let outcome = history
        .update(
            Some(&seen_by_both),
            &manifest(&policies, "loser"),
            &policies,
            None,
            engine().history_signing_key(),
            &mut OsRng,
        )
        .await;
    match outcome {
        Err(error @ HistoryStoreError::Conflict) => assert!(!error.is_corruption()),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The first set also conflicts once a head exists.
    let outcome = history
        .set_latest(None, [9; 32], engine().history_signing_key(), &mut OsRng)
        .await;
    assert!(matches!(outcome, Err(HistoryStoreError::Conflict)));

    let loaded = history.load(&key).await.unwrap().unwrap();
    assert_eq!(Some(loaded.head.clone()), winner);
    assert_eq!(loaded.generation(), 2);
}

async fn update_checks_policies_and_previous_transition<S: Store>(history: HistoryStore<S>) {
    let key = engine().history_verifying_key();
    let signing = engine().history_signing_key();
    let policies = vec![b"p1".to_vec(), b"p2".to_vec()];
    let document = manifest(&policies, "m");

    // A manifest policy without its policy document.
    match history
        .update(None, &document, &policies[..1], None, signing, &mut OsRng)
        .await
    {
        Err(HistoryStoreError::MissingPolicy { policy_hash }) => {
            assert_eq!(policy_hash, hexstring::encode(sha256(b"p2")));
        }
        other => panic!("expected MissingPolicy, got {other:?}"),
    }
    assert!(!history.has_latest().await.unwrap());

    // The caller's previous transition must be the current head (zero for the first set).
    let wrong: Hash = [3; 32];
    match history
        .update(
            None,
            &document,
            &policies,
            Some(&wrong),
            signing,
            &mut OsRng,
        )
        .await
    {
        Err(HistoryStoreError::TransitionMismatch { expected, current }) => {
            assert_eq!(expected, wrong);
            assert_eq!(current, ZERO_HASH);
        }
        other => panic!("expected TransitionMismatch, got {other:?}"),
    }
    assert!(!history.has_latest().await.unwrap());
    // Refused before anything was written.
    assert!(history.store().list("manifests").await.unwrap().is_empty());
    assert!(
        history
            .store()
            .list("transitions")
            .await
            .unwrap()
            .is_empty()
    );

    let first = history
        .update(
            None,
            &document,
            &policies,
            Some(&ZERO_HASH),
            signing,
            &mut OsRng,
        )
        .await
        .unwrap();
    let second_document = manifest(&policies[..1], "m2");
    let second = history
        .update(
            Some(&first.latest),
            &second_document,
            &policies[..1],
            Some(&first.latest.transition_hash),
            signing,
            &mut OsRng,
        )
        .await
        .unwrap();
    assert_eq!(
        second.transition.previous_transition_hash,
        first.latest.transition_hash
    );
    assert_eq!(history.load(&key).await.unwrap().unwrap().generation(), 2);
}

async fn wrong_key_is_a_bad_signature<S: Store>(history: HistoryStore<S>) {
    grow(&history, None, 2, "k").await;
    let wrong = other_engine().history_verifying_key();
    assert!(matches!(
        history.latest(&wrong).await,
        Err(HistoryStoreError::Corruption(HistoryError::BadSignature))
    ));
    assert!(matches!(
        history.load(&wrong).await,
        Err(HistoryStoreError::Corruption(HistoryError::BadSignature))
    ));
}

macro_rules! both_backends {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(contrast_store::HistoryStore::new(
                        contrast_store::MemoryStore::new(),
                    ))
                    .await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test]
                async fn $check() {
                    let (history, _dir) = super::file_history().await;
                    super::$check(history).await;
                }
            )*
        }
    };
}

both_backends!(
    updates_build_a_verified_history,
    conflict_is_distinct_and_history_stays_linear,
    update_checks_policies_and_previous_transition,
    wrong_key_is_a_bad_signature,
);

// ---------------------------------------------------------------- tampering on disk

fn expect_corruption(result: Result<impl std::fmt::Debug, HistoryStoreError>) -> HistoryError {
    match result {
        Err(HistoryStoreError::Corruption(error)) => error,
        other => panic!("expected Corruption, got {other:?}"),
    }
}

/// Every transition and manifest file on disk, flipped or deleted, is caught by the verified
/// load with the exact kind, address and position.
#[tokio::test]
async fn tampering_with_any_blob_on_disk_is_detected() {
    let (history, dir) = file_history().await;
    let key = engine().history_verifying_key();
    let (_, head) = grow(&history, None, 4, "t").await;
    let head = head.unwrap();
    let walked = history.walk(&head.transition_hash).await.unwrap();

    for (position, step) in walked.iter().enumerate() {
        for (kind, hash) in [
            (BlobKind::Transition, step.transition_hash),
            (BlobKind::Manifest, step.transition.manifest_hash),
        ] {
            let path = history.store().path_of(&Key::blob(kind, &hash));
            let original = std::fs::read(&path).unwrap();

            let mut flipped = original.clone();
            flipped[original.len() / 2] ^= 0x01;
            std::fs::write(&path, &flipped).unwrap();
            assert_eq!(
                expect_corruption(history.load(&key).await),
                HistoryError::HashMismatch {
                    kind,
                    expected: hash,
                    found: sha256(&flipped),
                    position
                },
                "{kind} at position {position}"
            );

            std::fs::remove_file(&path).unwrap();
            assert_eq!(
                expect_corruption(history.load(&key).await),
                HistoryError::MissingBlob {
                    kind,
                    hash,
                    position
                }
            );

            std::fs::write(&path, &original).unwrap();
            assert_eq!(history.load(&key).await.unwrap().unwrap().generation(), 4);
        }
    }

    // A policy read on its own is checked too.
    let policy_path = history
        .store()
        .path_of(&Key::blob(BlobKind::Policy, &sha256(b"shared")));
    std::fs::write(&policy_path, b"not shared").unwrap();
    match history.policies(&[sha256(b"shared")]).await {
        Err(error @ HistoryStoreError::CorruptBlob { .. }) => assert!(error.is_corruption()),
        other => panic!("expected CorruptBlob, got {other:?}"),
    }
    drop(dir);
}

/// Editing the signed head on disk: another hash, a flipped signature, a truncated or empty
/// file, or garbage after the signature.
#[tokio::test]
async fn tampering_with_the_head_on_disk_is_detected() {
    let (history, _dir) = file_history().await;
    let key = engine().history_verifying_key();
    let (_, head) = grow(&history, None, 3, "h").await;
    let head = head.unwrap();
    let path = history.store().path_of(&Key::latest_transition());
    let original = std::fs::read(&path).unwrap();
    assert_eq!(original, head.encode());

    // Point the head at an older transition, keeping the signature.
    let walked = history.walk(&head.transition_hash).await.unwrap();
    let mut repointed = original.clone();
    repointed[..32].copy_from_slice(&walked[1].transition_hash);
    std::fs::write(&path, &repointed).unwrap();
    assert_eq!(
        expect_corruption(history.load(&key).await),
        HistoryError::BadSignature
    );
    assert_eq!(
        expect_corruption(history.latest(&key).await),
        HistoryError::BadSignature
    );

    // Flip the last byte of the signature's s.
    let mut flipped = original.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let error = expect_corruption(history.load(&key).await);
    assert!(
        matches!(
            error,
            HistoryError::BadSignature | HistoryError::MalformedHead { .. }
        ),
        "{error:?}"
    );

    for (bytes, reason) in [
        (
            original[..32].to_vec(),
            MalformedHeadReason::TooShort { len: 32 },
        ),
        (Vec::new(), MalformedHeadReason::TooShort { len: 0 }),
        (
            [original.clone(), vec![0]].concat(),
            MalformedHeadReason::SignatureNotDer,
        ),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            expect_corruption(history.load(&key).await),
            HistoryError::MalformedHead { reason }
        );
        assert_eq!(
            expect_corruption(history.latest_unverified().await),
            HistoryError::MalformedHead { reason }
        );
    }

    std::fs::write(&path, &original).unwrap();
    assert_eq!(history.load(&key).await.unwrap().unwrap().head, head);
}

/// The same detection on the memory store, through its unchecked writer.
#[tokio::test]
async fn tampering_in_memory_is_detected() {
    let store = MemoryStore::new();
    let history = HistoryStore::new(store.clone());
    let key = engine().history_verifying_key();
    let (manifests, _) = grow(&history, None, 2, "m").await;
    let manifest_key = Key::blob(BlobKind::Manifest, &sha256(&manifests[0]));
    store.overwrite_unchecked(&manifest_key, b"{}");
    assert_eq!(
        expect_corruption(history.load(&key).await),
        HistoryError::HashMismatch {
            kind: BlobKind::Manifest,
            expected: sha256(&manifests[0]),
            found: sha256(b"{}"),
            position: 1
        }
    );
    store.remove_unchecked(&manifest_key);
    assert!(matches!(
        expect_corruption(history.load(&key).await),
        HistoryError::MissingBlob { position: 1, .. }
    ));
}
