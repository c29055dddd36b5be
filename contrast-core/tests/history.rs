//! History model: upstream vectors (contrast-formats.md §9.2), derived chain vectors (§9.6),
//! cross-implementation signatures, verification of signed histories and tampering.
#![allow(clippy::unwrap_used)] // Tests may unwrap; helpers outside #[test] fns too.

use std::collections::HashMap;
use std::sync::OnceLock;

use contrast_core::history::{
    BlobKind, BlobLookup, Hash, HistoryError, HistoryLimits, LatestTransition, MalformedHeadReason,
    TRANSITION_SIZE, Transition, ZERO_HASH, chain_contains, latest_transition_hash, rebuild_chain,
    verify_history, walk_transitions,
};
use contrast_core::seed::SeedEngine;
use contrast_core::sha256;
use hex_literal::hex;
use p384::ecdsa::{Signature, VerifyingKey};
use proptest::prelude::*;
use rand_core::OsRng;

type Blobs = HashMap<(BlobKind, Hash), Vec<u8>>;

const H_HELLO: Hash = hex!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
const H_WORLD: Hash = hex!("486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7");
const H_TRANSITION_HASH: Hash =
    hex!("7305db9b2abccd706c256db3d97e5ff48d677cfe4d3a5904afb7da0e3950e1e2");

const SE2_SEED: [u8; 32] = hex!("1adb326866d5b1e04520d9475f6ff41d3370bec96bbb5045d8dd9d16b3c48274");
const SE2_SALT: [u8; 32] = hex!("0d2f1e0360d8476f836b8aa3dde3b1c58a361469a6e4f10cf9ed500a651c1c2b");

fn se2() -> &'static SeedEngine {
    static ENGINE: OnceLock<SeedEngine> = OnceLock::new();
    ENGINE.get_or_init(|| SeedEngine::new(&SE2_SEED, &SE2_SALT).unwrap())
}

fn put(blobs: &mut Blobs, kind: BlobKind, bytes: &[u8]) -> Hash {
    let hash = sha256(bytes);
    blobs.insert((kind, hash), bytes.to_vec());
    hash
}

/// Stores manifests and their transitions as the Coordinator does; returns the head hash.
fn store_history(blobs: &mut Blobs, manifests: &[Vec<u8>]) -> Hash {
    let mut previous = ZERO_HASH;
    for manifest in manifests {
        let manifest_hash = put(blobs, BlobKind::Manifest, manifest);
        let transition = Transition {
            manifest_hash,
            previous_transition_hash: previous,
        };
        previous = put(blobs, BlobKind::Transition, &transition.encode());
    }
    previous
}

// ---------------------------------------------------------------- upstream vectors

#[test]
fn h_hello_and_h_world() {
    assert_eq!(sha256(b"hello"), H_HELLO);
    assert_eq!(sha256(b"world"), H_WORLD);
    assert_eq!(
        BlobKind::Manifest.key(&H_HELLO),
        "manifests/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(BlobKind::Policy.as_str(), "policies");
    assert_eq!(BlobKind::Transition.to_string(), "transitions");
}

#[test]
fn h_transition_encode() {
    let transition = Transition {
        manifest_hash: H_HELLO,
        previous_transition_hash: H_WORLD,
    };
    let encoded = transition.encode();
    assert_eq!(
        encoded,
        hex!(
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7"
        )
    );
    assert_eq!(Transition::decode(&encoded).unwrap(), transition);
    assert!(!transition.is_genesis());
}

#[test]
fn h_transition_hash() {
    let transition = Transition {
        manifest_hash: H_HELLO,
        previous_transition_hash: H_WORLD,
    };
    assert_eq!(transition.hash(), H_TRANSITION_HASH);
    assert_eq!(
        BlobKind::Transition.key(&transition.hash()),
        "transitions/7305db9b2abccd706c256db3d97e5ff48d677cfe4d3a5904afb7da0e3950e1e2"
    );
}

#[test]
fn transition_decode_rejects_wrong_lengths() {
    for len in [0, 32, 63, 65, 128] {
        let bytes = vec![7u8; len];
        assert_eq!(
            Transition::decode(&bytes).unwrap_err(),
            HistoryError::MalformedTransition {
                hash: sha256(&bytes),
                len
            }
        );
    }
}

/// The upstream walk fixture: transition i has manifest hash {i, 0, …} and follows i-1.
fn walk_42_fixture() -> (Blobs, Hash) {
    let mut blobs = Blobs::new();
    let mut previous = ZERO_HASH;
    for i in 0..42u8 {
        let mut manifest_hash = ZERO_HASH;
        manifest_hash[0] = i;
        let transition = Transition {
            manifest_hash,
            previous_transition_hash: previous,
        };
        previous = put(&mut blobs, BlobKind::Transition, &transition.encode());
    }
    (blobs, previous)
}

#[test]
fn h_walk_42() {
    let (blobs, head) = walk_42_fixture();
    let walked = walk_transitions(&head, &blobs, HistoryLimits::default()).unwrap();
    assert_eq!(walked.len(), 42);
    assert_eq!(walked[0].transition_hash, head);
    // Newest first: the head's transition carries manifest hash {41, 0, …}.
    for (step, walked) in walked.iter().enumerate() {
        assert_eq!(usize::from(walked.transition.manifest_hash[0]), 41 - step);
    }
    assert!(walked[41].transition.is_genesis());
}

#[test]
fn h_walk_zero() {
    let (blobs, _) = walk_42_fixture();
    assert!(
        walk_transitions(&ZERO_HASH, &blobs, HistoryLimits::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn h_walk_unknown() {
    let (blobs, _) = walk_42_fixture();
    let mut unknown = ZERO_HASH;
    unknown[0] = 123;
    let err = walk_transitions(&unknown, &blobs, HistoryLimits::default()).unwrap_err();
    assert_eq!(
        err,
        HistoryError::MissingBlob {
            kind: BlobKind::Transition,
            hash: unknown,
            position: 0
        }
    );
    assert_eq!(
        err.to_string(),
        "missing blob transitions/7b00000000000000000000000000000000000000000000000000000000000000 \
         at position 0 from the head"
    );
}

#[test]
fn walk_respects_the_transition_limit() {
    let (blobs, head) = walk_42_fixture();
    assert_eq!(
        walk_transitions(&head, &blobs, HistoryLimits::with_max_transitions(41)).unwrap_err(),
        HistoryError::TooLong { limit: 41 }
    );
    assert_eq!(
        walk_transitions(&head, &blobs, HistoryLimits::with_max_transitions(42))
            .unwrap()
            .len(),
        42
    );
    assert_eq!(HistoryLimits::default().max_transitions, 1_000_000);
}

#[test]
fn walk_rehashes_transitions() {
    let (mut blobs, head) = walk_42_fixture();
    let walked = walk_transitions(&head, &blobs, HistoryLimits::default()).unwrap();
    let victim = walked[5].transition_hash;
    let stored = blobs.get_mut(&(BlobKind::Transition, victim)).unwrap();
    stored[40] ^= 0x01;
    let found = sha256(stored);
    assert_eq!(
        walk_transitions(&head, &blobs, HistoryLimits::default()).unwrap_err(),
        HistoryError::HashMismatch {
            kind: BlobKind::Transition,
            expected: victim,
            found,
            position: 5
        }
    );
}

#[test]
fn walk_rejects_a_transition_of_the_wrong_length() {
    let mut blobs = Blobs::new();
    let short = [9u8; TRANSITION_SIZE - 1];
    let hash = put(&mut blobs, BlobKind::Transition, &short);
    assert_eq!(
        walk_transitions(&hash, &blobs, HistoryLimits::default()).unwrap_err(),
        HistoryError::MalformedTransition { hash, len: 63 }
    );
}

#[test]
fn chain_contains_finds_ancestors_only() {
    let (blobs, head) = walk_42_fixture();
    let walked = walk_transitions(&head, &blobs, HistoryLimits::default()).unwrap();
    let limits = HistoryLimits::default();
    assert!(chain_contains(&head, &head, &blobs, limits).unwrap());
    assert!(chain_contains(&head, &walked[41].transition_hash, &blobs, limits).unwrap());
    // A descendant is not an ancestor.
    assert!(!chain_contains(&walked[1].transition_hash, &head, &blobs, limits).unwrap());
    assert!(!chain_contains(&head, &[0xee; 32], &blobs, limits).unwrap());
}

// ---------------------------------------------------------------- derived chain vectors

#[test]
fn d_chain_1() {
    let chain = rebuild_chain(&["old"]);
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].manifest_hash, sha256(b"old"));
    assert!(chain[0].is_genesis());
    assert_eq!(
        chain[0].hash(),
        hex!("b92f647865a12cc273ca24ccca2cbb8bec1aa3bce2ecb883689d2af49b4e168a")
    );
}

#[test]
fn d_chain_2() {
    let manifests = ["old", "expected"];
    let chain = rebuild_chain(&manifests);
    assert_eq!(chain[1].previous_transition_hash, chain[0].hash());
    let latest = hex!("a2273881542b80861b760e6b4c7a7ce65cccb1c205a8320252eb8f401b693fd4");
    assert_eq!(chain[1].hash(), latest);
    assert_eq!(latest_transition_hash(&manifests), latest);
}

#[test]
fn empty_manifest_list_has_zero_latest_hash() {
    let none: [&[u8]; 0] = [];
    assert!(rebuild_chain(&none).is_empty());
    assert_eq!(latest_transition_hash(&none), ZERO_HASH);
}

// ---------------------------------------------------------------- signatures

const OPENSSL_SIGNATURE: &[u8] =
    include_bytes!("fixtures/history/openssl-sig-h-transition-hash.der");
const RUST_SIGNATURE: &[u8] = include_bytes!("fixtures/history/rust-sig-h-transition-hash.der");

fn head_bytes(hash: &Hash, signature_der: &[u8]) -> Vec<u8> {
    [hash.as_slice(), signature_der].concat()
}

/// `fixtures/history/openssl-sig-h-transition-hash.der` was made by OpenSSL 3.0 with the SE-2-txsign
/// key (SEC1 DER from the vector converted with `openssl ec -inform DER -in key.der -out key.pem`)
/// and the raw 32-byte H-transition-hash in `hash.bin`, which pkeyutl signs as a digest:
///
/// ```text
/// openssl pkeyutl -sign -inkey key.pem -in hash.bin -out openssl-sig-h-transition-hash.der
/// ```
#[test]
fn accepts_an_openssl_signature_over_the_raw_hash() {
    let head_bytes = head_bytes(&H_TRANSITION_HASH, OPENSSL_SIGNATURE);
    let head = LatestTransition::decode(&head_bytes).unwrap();
    assert_eq!(head.transition_hash, H_TRANSITION_HASH);
    head.verify(&se2().history_verifying_key()).unwrap();
    // Byte-exact: the 49-byte `s` (leading zero) re-encodes identically.
    assert_eq!(head.encode(), head_bytes);
}

/// `fixtures/history/rust-sig-h-transition-hash.der` is the DER part of
/// `LatestTransition::sign(H-transition-hash, SE-2-txsign key, OsRng).encode()`. OpenSSL accepts
/// it (`se-2-txsign-pub.pem` is the public key, `hash.bin` the raw 32-byte hash):
///
/// ```text
/// openssl pkeyutl -verify -pubin -inkey se-2-txsign-pub.pem -in hash.bin \
///     -sigfile rust-sig-h-transition-hash.der
/// Signature Verified Successfully
/// ```
/// (and reports "Signature Verification Failure" once any byte of the signature is flipped).
#[test]
fn our_signature_fixture_verifies() {
    let head_bytes = head_bytes(&H_TRANSITION_HASH, RUST_SIGNATURE);
    let head = LatestTransition::decode(&head_bytes).unwrap();
    head.verify(&se2().history_verifying_key()).unwrap();
    assert_eq!(head.encode(), head_bytes);
}

#[test]
fn the_public_key_fixture_is_the_txsign_key() {
    use p384::pkcs8::DecodePublicKey;
    let pem = include_str!("fixtures/history/se-2-txsign-pub.pem");
    let key = VerifyingKey::from_public_key_pem(pem).unwrap();
    assert_eq!(key, se2().history_verifying_key());
}

#[test]
fn sign_then_verify_and_reject_other_hash_or_key() {
    let head =
        LatestTransition::sign(H_TRANSITION_HASH, se2().history_signing_key(), &mut OsRng).unwrap();
    head.verify(&se2().history_verifying_key()).unwrap();

    let mut other_hash = head.clone();
    other_hash.transition_hash[31] ^= 0x80;
    assert_eq!(
        other_hash.verify(&se2().history_verifying_key()),
        Err(HistoryError::BadSignature)
    );

    let other_engine = SeedEngine::new(&[3u8; 64], &[4u8; 32]).unwrap();
    assert_eq!(
        head.verify(&other_engine.history_verifying_key()),
        Err(HistoryError::BadSignature)
    );
}

#[test]
fn head_decode_rejects_short_input() {
    for len in [0, 1, 31, 32] {
        assert_eq!(
            LatestTransition::decode(&vec![1u8; len]).unwrap_err(),
            HistoryError::MalformedHead {
                reason: MalformedHeadReason::TooShort { len }
            }
        );
    }
}

#[test]
fn head_decode_rejects_non_der_signatures() {
    let not_der: &[&[u8]] = &[
        &[0x00],
        b"not a signature",
        // Trailing byte after the SEQUENCE.
        &[OPENSSL_SIGNATURE, &[0x00]].concat(),
        // Truncated.
        &OPENSSL_SIGNATURE[..OPENSSL_SIGNATURE.len() - 1],
        // Non-minimal INTEGER (leading zero before a byte < 0x80).
        &hex!("3008 020200 01 020200 01"),
        // Long-form length where the short form is required.
        &hex!("308106 020101 020101"),
        // Negative INTEGER.
        &hex!("3006 0201ff 020101"),
        // Integer longer than 48 bytes.
        &[&hex!("3036 0231 01")[..], &[0u8; 48], &hex!("020101")].concat(),
    ];
    for der in not_der {
        assert_eq!(
            LatestTransition::decode(&head_bytes(&H_TRANSITION_HASH, der)).unwrap_err(),
            HistoryError::MalformedHead {
                reason: MalformedHeadReason::SignatureNotDer
            },
            "{}",
            hex::encode(der)
        );
    }
}

#[test]
fn head_decode_rejects_out_of_range_scalars() {
    let order = hex!(
        "00ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973"
    );
    let out_of_range: &[Vec<u8>] = &[
        // r = 0
        hex!("3006 020100 020101").to_vec(),
        // s = 0
        hex!("3006 020101 020100").to_vec(),
        // s = n (49-byte INTEGER with sign byte)
        [&hex!("3036 020101 0231")[..], &order].concat(),
    ];
    for der in out_of_range {
        let err = LatestTransition::decode(&head_bytes(&H_TRANSITION_HASH, der)).unwrap_err();
        assert!(
            matches!(
                err,
                HistoryError::MalformedHead {
                    reason: MalformedHeadReason::SignatureScalarOutOfRange
                        | MalformedHeadReason::SignatureNotDer
                }
            ),
            "{}: {err:?}",
            hex::encode(der)
        );
    }
    assert_eq!(
        LatestTransition::decode(&head_bytes(&H_TRANSITION_HASH, &out_of_range[2])).unwrap_err(),
        HistoryError::MalformedHead {
            reason: MalformedHeadReason::SignatureScalarOutOfRange
        }
    );
}

// ---------------------------------------------------------------- verify_history

/// Realistic, distinct manifests.
fn manifests(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            format!(
                r#"{{"Policies":{{"{:064x}":{{"SANs":["svc-{i}"],"WorkloadSecretID":"w{i}","Role":""}}}},"ReferenceValues":{{}},"WorkloadOwnerKeyDigests":[],"SeedshareOwnerPubKeys":[]}}"#,
                i + 1
            )
            .into_bytes()
        })
        .collect()
}

struct SignedHistory {
    manifests: Vec<Vec<u8>>,
    blobs: Blobs,
    head: Vec<u8>,
    chain: Vec<Transition>,
}

/// A signed five-manifest history, signed once for all tests.
fn signed_history() -> &'static SignedHistory {
    static HISTORY: OnceLock<SignedHistory> = OnceLock::new();
    HISTORY.get_or_init(|| {
        let manifests = manifests(5);
        let mut blobs = Blobs::new();
        let head_hash = store_history(&mut blobs, &manifests);
        // An unrelated policy blob does not disturb verification.
        put(&mut blobs, BlobKind::Policy, b"[data]\n");
        let head = LatestTransition::sign(head_hash, se2().history_signing_key(), &mut OsRng)
            .unwrap()
            .encode();
        let chain = rebuild_chain(&manifests);
        SignedHistory {
            manifests,
            blobs,
            head,
            chain,
        }
    })
}

#[test]
fn verifies_a_signed_history() {
    let fixture = signed_history();
    let verified = verify_history(
        &fixture.head,
        &se2().history_verifying_key(),
        &fixture.blobs,
        HistoryLimits::default(),
    )
    .unwrap();
    assert_eq!(verified.generation(), 5);
    assert_eq!(
        verified.manifests().collect::<Vec<_>>(),
        fixture
            .manifests
            .iter()
            .map(Vec::as_slice)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        verified.latest_manifest(),
        Some(fixture.manifests[4].as_slice())
    );
    for (entry, transition) in verified.entries.iter().zip(&fixture.chain) {
        assert_eq!(entry.transition, *transition);
        assert_eq!(entry.transition_hash, transition.hash());
    }
    assert_eq!(
        verified.head.transition_hash,
        latest_transition_hash(&fixture.manifests)
    );
    // Also through a reference and after copying out.
    let owned = verify_history(
        &fixture.head,
        &se2().history_verifying_key(),
        &&fixture.blobs,
        HistoryLimits::default(),
    )
    .unwrap()
    .into_owned();
    assert_eq!(owned, verified);
}

#[test]
fn verify_history_rejects_the_wrong_key() {
    let fixture = signed_history();
    let other = SeedEngine::new(&[5u8; 64], &[6u8; 32]).unwrap();
    assert_eq!(
        verify_history(
            &fixture.head,
            &other.history_verifying_key(),
            &fixture.blobs,
            HistoryLimits::default()
        )
        .unwrap_err(),
        HistoryError::BadSignature
    );
}

#[test]
fn verify_history_checks_the_signature_before_touching_blobs() {
    let fixture = signed_history();
    let other = SeedEngine::new(&[5u8; 64], &[6u8; 32]).unwrap();
    let empty = Blobs::new();
    assert_eq!(
        verify_history(
            &fixture.head,
            &other.history_verifying_key(),
            &empty,
            HistoryLimits::default()
        )
        .unwrap_err(),
        HistoryError::BadSignature
    );
}

#[test]
fn verify_history_names_a_missing_manifest() {
    let fixture = signed_history();
    let mut blobs = fixture.blobs.clone();
    let victim = &fixture.chain[1];
    blobs.remove(&(BlobKind::Manifest, victim.manifest_hash));
    assert_eq!(
        verify_history(
            &fixture.head,
            &se2().history_verifying_key(),
            &blobs,
            HistoryLimits::default()
        )
        .unwrap_err(),
        // Chain of 5: the second transition is 3 steps from the head.
        HistoryError::MissingBlob {
            kind: BlobKind::Manifest,
            hash: victim.manifest_hash,
            position: 3
        }
    );
}

#[test]
fn verify_history_names_a_missing_transition() {
    let fixture = signed_history();
    let mut blobs = fixture.blobs.clone();
    let victim = fixture.chain[0].hash();
    blobs.remove(&(BlobKind::Transition, victim));
    assert_eq!(
        verify_history(
            &fixture.head,
            &se2().history_verifying_key(),
            &blobs,
            HistoryLimits::default()
        )
        .unwrap_err(),
        HistoryError::MissingBlob {
            kind: BlobKind::Transition,
            hash: victim,
            position: 4
        }
    );
}

#[test]
fn verify_history_respects_the_limit() {
    let fixture = signed_history();
    let key = se2().history_verifying_key();
    assert_eq!(
        verify_history(
            &fixture.head,
            &key,
            &fixture.blobs,
            HistoryLimits::with_max_transitions(4)
        )
        .unwrap_err(),
        HistoryError::TooLong { limit: 4 }
    );
    assert!(
        verify_history(
            &fixture.head,
            &key,
            &fixture.blobs,
            HistoryLimits::with_max_transitions(5)
        )
        .is_ok()
    );
}

#[test]
fn verify_history_rejects_a_signed_zero_head() {
    let head = LatestTransition::sign(ZERO_HASH, se2().history_signing_key(), &mut OsRng).unwrap();
    assert_eq!(
        verify_history(
            &head.encode(),
            &se2().history_verifying_key(),
            &Blobs::new(),
            HistoryLimits::default()
        )
        .unwrap_err(),
        HistoryError::EmptyHistory
    );
}

#[test]
fn verify_history_rejects_a_malformed_head() {
    let fixture = signed_history();
    assert_eq!(
        verify_history(
            &fixture.head[..32],
            &se2().history_verifying_key(),
            &fixture.blobs,
            HistoryLimits::default()
        )
        .unwrap_err(),
        HistoryError::MalformedHead {
            reason: MalformedHeadReason::TooShort { len: 32 }
        }
    );
}

#[test]
fn error_messages_use_lowercase_hex() {
    let err = HistoryError::HashMismatch {
        kind: BlobKind::Manifest,
        expected: [0xab; 32],
        found: [0xcd; 32],
        position: 2,
    };
    assert_eq!(
        err.to_string(),
        format!(
            "hash mismatch for manifests/{} at position 2 from the head: content hashes to {}",
            "ab".repeat(32),
            "cd".repeat(32)
        )
    );
}

/// A lookup that owns nothing: blobs are computed on request (exercises `Cow::Owned`).
struct Generated;

impl BlobLookup for Generated {
    fn get(&self, kind: BlobKind, hash: &Hash) -> Option<std::borrow::Cow<'_, [u8]>> {
        let fixture = signed_history();
        fixture
            .blobs
            .get(&(kind, *hash))
            .map(|blob| std::borrow::Cow::Owned(blob.clone()))
    }
}

#[test]
fn verify_history_works_with_owned_lookups() {
    let fixture = signed_history();
    let verified = verify_history(
        &fixture.head,
        &se2().history_verifying_key(),
        &Generated,
        HistoryLimits::default(),
    )
    .unwrap();
    assert_eq!(verified.generation(), 5);
}

// ---------------------------------------------------------------- proptests

fn arb_hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>()
}

/// A signature from arbitrary in-range scalars: no signing needed to test the encoding.
fn arb_signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 48]>(), any::<[u8; 48]>(), 0usize..48, 0usize..48).prop_filter_map(
        "scalars out of range",
        |(mut r, mut s, r_zeros, s_zeros)| {
            // Leading zero bytes exercise the short DER integer forms.
            r[..r_zeros].fill(0);
            s[..s_zeros].fill(0);
            Signature::from_scalars(r, s).ok()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn transition_round_trip(manifest_hash in arb_hash(), previous_transition_hash in arb_hash()) {
        let transition = Transition { manifest_hash, previous_transition_hash };
        let encoded = transition.encode();
        prop_assert_eq!(Transition::decode(&encoded).unwrap(), transition);
        prop_assert_eq!(transition.hash(), sha256(&encoded));
    }

    #[test]
    fn latest_transition_round_trip(transition_hash in arb_hash(), signature in arb_signature()) {
        let head = LatestTransition { transition_hash, signature };
        let encoded = head.encode();
        let decoded = LatestTransition::decode(&encoded).unwrap();
        prop_assert_eq!(&decoded, &head);
        prop_assert_eq!(decoded.encode(), encoded);
    }

    #[test]
    fn head_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(head) = LatestTransition::decode(&bytes) {
            prop_assert_eq!(head.encode(), bytes);
        }
    }
}

/// Where a byte is flipped.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The manifest of the transition at this index (oldest first).
    Manifest(usize),
    /// The transition at this index (oldest first).
    Transition(usize),
    /// The head's 32-byte hash.
    HeadHash,
    /// The head's DER signature.
    HeadSignature,
}

fn arb_target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0usize..5).prop_map(Target::Manifest),
        (0usize..5).prop_map(Target::Transition),
        Just(Target::HeadHash),
        Just(Target::HeadSignature),
    ]
}

proptest! {
    // Every case verifies an ECDSA signature; the history is signed once.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_flipped_byte_is_caught(target in arb_target(), offset in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let fixture = signed_history();
        let key = se2().history_verifying_key();
        let mut blobs = fixture.blobs.clone();
        let mut head = fixture.head.clone();
        let err = match target {
            Target::Manifest(i) => {
                let hash = fixture.chain[i].manifest_hash;
                let blob = blobs.get_mut(&(BlobKind::Manifest, hash)).unwrap();
                let at = offset.index(blob.len());
                blob[at] ^= mask;
                let found = sha256(blob);
                let err = verify_history(&head, &key, &blobs, HistoryLimits::default()).unwrap_err();
                prop_assert_eq!(&err, &HistoryError::HashMismatch {
                    kind: BlobKind::Manifest, expected: hash, found, position: 4 - i
                });
                err
            }
            Target::Transition(i) => {
                let hash = fixture.chain[i].hash();
                let blob = blobs.get_mut(&(BlobKind::Transition, hash)).unwrap();
                let at = offset.index(blob.len());
                blob[at] ^= mask;
                let found = sha256(blob);
                let err = verify_history(&head, &key, &blobs, HistoryLimits::default()).unwrap_err();
                prop_assert_eq!(&err, &HistoryError::HashMismatch {
                    kind: BlobKind::Transition, expected: hash, found, position: 4 - i
                });
                err
            }
            Target::HeadHash => {
                head[offset.index(32)] ^= mask;
                let err = verify_history(&head, &key, &blobs, HistoryLimits::default()).unwrap_err();
                // The signature is checked before the walk, so a changed hash never reaches it.
                prop_assert_eq!(&err, &HistoryError::BadSignature);
                err
            }
            Target::HeadSignature => {
                let at = 32 + offset.index(head.len() - 32);
                head[at] ^= mask;
                let err = verify_history(&head, &key, &blobs, HistoryLimits::default()).unwrap_err();
                prop_assert!(
                    matches!(err, HistoryError::BadSignature | HistoryError::MalformedHead { .. }),
                    "{:?}", err
                );
                err
            }
        };
        prop_assert!(!err.to_string().is_empty());
    }
}
