//! The manifest history: content-addressed transitions and a signed head.
//!
//! Every stored blob lives under `<kind>/<lowercase hex SHA-256 of the blob>`:
//!
//! | key                     | value                                                  |
//! |-------------------------|--------------------------------------------------------|
//! | `manifests/<hash>`      | the raw manifest JSON bytes                            |
//! | `policies/<hash>`       | the raw policy / initdata bytes                        |
//! | `transitions/<hash>`    | a 64-byte [`Transition`]                               |
//! | `transitions/latest`    | the signed head, a [`LatestTransition`] (mutable)      |
//!
//! A [`Transition`] is `ManifestHash[32] ‖ PreviousTransitionHash[32]`, exactly 64 bytes; the
//! first transition has the all-zero previous hash ([`ZERO_HASH`]), which is the chain root and
//! is never stored. The transition hash is SHA-256 of those 64 bytes.
//!
//! A [`LatestTransition`] is `TransitionHash[32] ‖ signature`, where the signature is a DER
//! `ECDSA-Sig-Value` made with the seed-derived P-384 transaction signing key over the raw
//! 32-byte transition hash used directly as the digest (no further hashing).
//!
//! [`verify_history`] checks the head's signature first, then walks the chain from the head to
//! the root, re-hashing every transition and manifest against its content address. A client
//! without the key can still recompute the head hash from the manifest list alone with
//! [`rebuild_chain`] / [`latest_transition_hash`].
//!
//! Positions in errors count steps from the head: position 0 is the transition the head points
//! to, position `generation - 1` is the genesis transition.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use p384::ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use p384::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;

use crate::hexstring;

/// A SHA-256 hash: the content address of every stored blob.
pub type Hash = [u8; 32];

/// Size of a [`Hash`](type@Hash) in bytes.
pub const HASH_SIZE: usize = 32;

/// The all-zero hash: the previous-transition hash of the genesis transition, the chain root.
pub const ZERO_HASH: Hash = [0u8; HASH_SIZE];

/// Size of an encoded [`Transition`] in bytes.
pub const TRANSITION_SIZE: usize = 2 * HASH_SIZE;

/// Store key of the signed head.
pub const LATEST_TRANSITION_KEY: &str = "transitions/latest";

/// The kind of a content-addressed blob; its [`as_str`](BlobKind::as_str) is the key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum BlobKind {
    /// A manifest (`manifests/<hash>`).
    Manifest,
    /// A policy or initdata document (`policies/<hash>`).
    Policy,
    /// A 64-byte transition (`transitions/<hash>`).
    Transition,
}

impl BlobKind {
    /// The key prefix upstream uses for this kind: `manifests`, `policies` or `transitions`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            BlobKind::Manifest => "manifests",
            BlobKind::Policy => "policies",
            BlobKind::Transition => "transitions",
        }
    }

    /// The store key of the blob with this kind and hash: `<kind>/<lowercase hex hash>`.
    #[must_use]
    pub fn key(self, hash: &Hash) -> String {
        format!("{}/{}", self.as_str(), hexstring::encode(hash))
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signed head could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedHeadReason {
    /// The encoding is not longer than the 32-byte hash, so there is no signature.
    #[error("{len} bytes, expected a 32-byte hash followed by a signature")]
    TooShort {
        /// Length found.
        len: usize,
    },
    /// The signature is not a DER `ECDSA-Sig-Value` with integers of at most 48 bytes.
    #[error("signature is not a der ecdsa-sig-value for p-384")]
    SignatureNotDer,
    /// The signature's `r` or `s` is zero or not below the group order.
    #[error("signature scalar r or s is outside 1..n")]
    SignatureScalarOutOfRange,
    /// The signature parses but is not in canonical DER form.
    #[error("signature is not canonical der")]
    SignatureNotCanonical,
}

/// Why a history, transition or head was rejected. Hashes print as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A blob the chain refers to is not stored.
    #[error("missing blob {kind}/{} at position {position} from the head", hexstring::encode(.hash))]
    MissingBlob {
        /// Kind of the missing blob.
        kind: BlobKind,
        /// Its content address.
        hash: Hash,
        /// Steps from the head of the transition that needed it (0 = the head's transition).
        position: usize,
    },
    /// A stored blob does not hash to its content address.
    #[error(
        "hash mismatch for {kind}/{} at position {position} from the head: content hashes to {}",
        hexstring::encode(.expected),
        hexstring::encode(.found)
    )]
    HashMismatch {
        /// Kind of the blob.
        kind: BlobKind,
        /// The content address it was stored (and looked up) under.
        expected: Hash,
        /// SHA-256 of the stored content.
        found: Hash,
        /// Steps from the head of the transition that needed it (0 = the head's transition).
        position: usize,
    },
    /// A transition is not exactly 64 bytes.
    #[error(
        "malformed transition {}: {len} bytes, expected {TRANSITION_SIZE}",
        hexstring::encode(.hash)
    )]
    MalformedTransition {
        /// SHA-256 of the rejected bytes (its content address).
        hash: Hash,
        /// Length found.
        len: usize,
    },
    /// The signed head could not be decoded.
    #[error("malformed latest transition: {reason}")]
    MalformedHead {
        /// What was wrong.
        reason: MalformedHeadReason,
    },
    /// The head's signature does not verify under the given key.
    #[error("latest transition signature does not verify with the transaction signing key")]
    BadSignature,
    /// The chain is longer than the configured limit.
    #[error("history has more than {limit} transitions")]
    TooLong {
        /// The limit in transitions.
        limit: usize,
    },
    /// The signed head points to the zero hash, so there is no manifest.
    #[error("latest transition points to the zero hash: the history is empty")]
    EmptyHistory,
    /// Signing the head failed.
    #[error("signing the latest transition failed")]
    SigningFailed,
}

/// One state change: a manifest and the transition it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// SHA-256 of the manifest bytes.
    pub manifest_hash: Hash,
    /// Hash of the previous transition, or [`ZERO_HASH`] for the first one.
    pub previous_transition_hash: Hash,
}

impl Transition {
    /// The 64-byte encoding `manifest_hash ‖ previous_transition_hash`.
    #[must_use]
    pub fn encode(&self) -> [u8; TRANSITION_SIZE] {
        let mut out = [0u8; TRANSITION_SIZE];
        let (manifest, previous) = out.split_at_mut(HASH_SIZE);
        manifest.copy_from_slice(&self.manifest_hash);
        previous.copy_from_slice(&self.previous_transition_hash);
        out
    }

    /// Decodes exactly 64 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Transition, HistoryError> {
        let malformed = || HistoryError::MalformedTransition {
            hash: crate::sha256(bytes),
            len: bytes.len(),
        };
        let encoded = <&[u8; TRANSITION_SIZE]>::try_from(bytes).map_err(|_| malformed())?;
        let (manifest, previous) = encoded.split_at(HASH_SIZE);
        Ok(Transition {
            manifest_hash: manifest.try_into().map_err(|_| malformed())?,
            previous_transition_hash: previous.try_into().map_err(|_| malformed())?,
        })
    }

    /// The transition hash: SHA-256 of the 64-byte encoding, and its content address.
    #[must_use]
    pub fn hash(&self) -> Hash {
        crate::sha256(&self.encode())
    }

    /// Whether this is the first transition of a history.
    #[must_use]
    pub fn is_genesis(&self) -> bool {
        self.previous_transition_hash == ZERO_HASH
    }
}

/// The signed head (`transitions/latest`): the newest transition hash and the Coordinator's
/// signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestTransition {
    /// Hash of the newest transition.
    pub transition_hash: Hash,
    /// ECDSA P-384 signature over the raw transition hash.
    pub signature: Signature,
}

impl LatestTransition {
    /// Signs `transition_hash` with the transaction signing key: ECDSA P-384 with the 32-byte
    /// hash used directly as the digest (randomized nonce).
    pub fn sign(
        transition_hash: Hash,
        key: &SigningKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<LatestTransition, HistoryError> {
        let signature: Signature = key
            .sign_prehash_with_rng(rng, &transition_hash)
            .map_err(|_| HistoryError::SigningFailed)?;
        Ok(LatestTransition {
            transition_hash,
            signature,
        })
    }

    /// Checks the signature with the transaction signing public key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), HistoryError> {
        key.verify_prehash(&self.transition_hash, &self.signature)
            .map_err(|_| HistoryError::BadSignature)
    }

    /// The encoding `transition_hash ‖ DER ECDSA-Sig-Value`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let der = self.signature.to_der();
        let mut out = Vec::with_capacity(HASH_SIZE + der.as_bytes().len());
        out.extend_from_slice(&self.transition_hash);
        out.extend_from_slice(der.as_bytes());
        out
    }

    /// Decodes `hash ‖ signature`: more than 32 bytes, the rest strict DER of a P-384 signature
    /// with both scalars in `1..n`. Every accepted input re-encodes to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<LatestTransition, HistoryError> {
        let malformed = |reason| HistoryError::MalformedHead { reason };
        if bytes.len() <= HASH_SIZE {
            return Err(malformed(MalformedHeadReason::TooShort {
                len: bytes.len(),
            }));
        }
        let (hash, der) = bytes.split_at(HASH_SIZE);
        let transition_hash: Hash = hash
            .try_into()
            .map_err(|_| malformed(MalformedHeadReason::TooShort { len: bytes.len() }))?;
        let der_signature = DerSignature::from_bytes(der)
            .map_err(|_| malformed(MalformedHeadReason::SignatureNotDer))?;
        let signature = Signature::try_from(der_signature)
            .map_err(|_| malformed(MalformedHeadReason::SignatureScalarOutOfRange))?;
        // The encoding is compared byte for byte in the store's compare-and-swap, so only the
        // canonical form is accepted.
        if signature.to_der().as_bytes() != der {
            return Err(malformed(MalformedHeadReason::SignatureNotCanonical));
        }
        Ok(LatestTransition {
            transition_hash,
            signature,
        })
    }
}

/// Rebuilds the transition chain of a manifest list (oldest first): the first transition
/// follows [`ZERO_HASH`], each further one the hash of its predecessor.
#[must_use]
pub fn rebuild_chain(manifests: &[impl AsRef<[u8]>]) -> Vec<Transition> {
    let mut previous_transition_hash = ZERO_HASH;
    manifests
        .iter()
        .map(|manifest| {
            let transition = Transition {
                manifest_hash: crate::sha256(manifest.as_ref()),
                previous_transition_hash,
            };
            previous_transition_hash = transition.hash();
            transition
        })
        .collect()
}

/// The hash of the newest transition of a manifest list (oldest first), or [`ZERO_HASH`] for an
/// empty list. This is what the Coordinator signs and binds into its `/attest` report data.
#[must_use]
pub fn latest_transition_hash(manifests: &[impl AsRef<[u8]>]) -> Hash {
    rebuild_chain(manifests)
        .last()
        .map_or(ZERO_HASH, Transition::hash)
}

/// Read access to content-addressed blobs, as stored under `<kind>/<hash>`. Implementations
/// return what is stored without checking it; the history code re-hashes every blob.
pub trait BlobLookup {
    /// The blob stored under `kind/hash`, if any.
    fn get(&self, kind: BlobKind, hash: &Hash) -> Option<Cow<'_, [u8]>>;
}

impl<T: BlobLookup + ?Sized> BlobLookup for &T {
    fn get(&self, kind: BlobKind, hash: &Hash) -> Option<Cow<'_, [u8]>> {
        (**self).get(kind, hash)
    }
}

impl<S: std::hash::BuildHasher> BlobLookup for HashMap<(BlobKind, Hash), Vec<u8>, S> {
    fn get(&self, kind: BlobKind, hash: &Hash) -> Option<Cow<'_, [u8]>> {
        HashMap::get(self, &(kind, *hash)).map(|blob| Cow::Borrowed(blob.as_slice()))
    }
}

impl BlobLookup for BTreeMap<(BlobKind, Hash), Vec<u8>> {
    fn get(&self, kind: BlobKind, hash: &Hash) -> Option<Cow<'_, [u8]>> {
        BTreeMap::get(self, &(kind, *hash)).map(|blob| Cow::Borrowed(blob.as_slice()))
    }
}

/// Budgets that bound the work of a walk over untrusted storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryLimits {
    /// Most transitions a walk follows before failing with [`HistoryError::TooLong`].
    pub max_transitions: usize,
}

impl HistoryLimits {
    /// Default for [`HistoryLimits::max_transitions`].
    pub const DEFAULT_MAX_TRANSITIONS: usize = 1_000_000;

    /// Limits with the given maximum number of transitions.
    #[must_use]
    pub const fn with_max_transitions(max_transitions: usize) -> HistoryLimits {
        HistoryLimits { max_transitions }
    }
}

impl Default for HistoryLimits {
    fn default() -> HistoryLimits {
        HistoryLimits::with_max_transitions(HistoryLimits::DEFAULT_MAX_TRANSITIONS)
    }
}

/// A transition reached by a walk, with its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkedTransition {
    /// The transition's hash (its content address).
    pub transition_hash: Hash,
    /// The decoded transition.
    pub transition: Transition,
}

/// Follows the chain from `head_hash` to the zero hash without checking any signature; every
/// transition is re-hashed against its content address. Returns the transitions newest first;
/// the zero hash walks zero steps.
pub fn walk_transitions<B: BlobLookup + ?Sized>(
    head_hash: &Hash,
    blobs: &B,
    limits: HistoryLimits,
) -> Result<Vec<WalkedTransition>, HistoryError> {
    let mut walked = Vec::new();
    let mut next = *head_hash;
    while next != ZERO_HASH {
        let step = load_transition(blobs, &next, walked.len(), limits)?;
        next = step.transition.previous_transition_hash;
        walked.push(step);
    }
    Ok(walked)
}

/// Whether `candidate` is `head_hash` or one of its ancestors: the staleness check of a
/// Coordinator that sees a foreign head (a head it already built on is not a reason to go
/// stale). Stops as soon as `candidate` is found.
pub fn chain_contains<B: BlobLookup + ?Sized>(
    head_hash: &Hash,
    candidate: &Hash,
    blobs: &B,
    limits: HistoryLimits,
) -> Result<bool, HistoryError> {
    let mut next = *head_hash;
    let mut position = 0;
    while next != ZERO_HASH {
        if next == *candidate {
            return Ok(true);
        }
        next = load_transition(blobs, &next, position, limits)?
            .transition
            .previous_transition_hash;
        position += 1;
    }
    Ok(false)
}

/// Loads, re-hashes and decodes `transitions/<hash>`, found `position` steps from the head.
fn load_transition<B: BlobLookup + ?Sized>(
    blobs: &B,
    hash: &Hash,
    position: usize,
    limits: HistoryLimits,
) -> Result<WalkedTransition, HistoryError> {
    if position >= limits.max_transitions {
        return Err(HistoryError::TooLong {
            limit: limits.max_transitions,
        });
    }
    let blob = load_blob(blobs, BlobKind::Transition, hash, position)?;
    let transition = Transition::decode(&blob)?;
    Ok(WalkedTransition {
        transition_hash: *hash,
        transition,
    })
}

/// Loads `kind/hash` and checks that the content hashes to its address.
fn load_blob<'b, B: BlobLookup + ?Sized>(
    blobs: &'b B,
    kind: BlobKind,
    hash: &Hash,
    position: usize,
) -> Result<Cow<'b, [u8]>, HistoryError> {
    let blob = blobs.get(kind, hash).ok_or(HistoryError::MissingBlob {
        kind,
        hash: *hash,
        position,
    })?;
    let found = crate::sha256(&blob);
    if found != *hash {
        return Err(HistoryError::HashMismatch {
            kind,
            expected: *hash,
            found,
            position,
        });
    }
    Ok(blob)
}

/// One verified state of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry<'b> {
    /// Hash of the transition.
    pub transition_hash: Hash,
    /// The transition.
    pub transition: Transition,
    /// The manifest bytes (SHA-256 equals `transition.manifest_hash`).
    pub manifest: Cow<'b, [u8]>,
}

/// A history whose head signature and every content address were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHistory<'b> {
    /// The verified signed head.
    pub head: LatestTransition,
    /// The states, oldest first; the last one is the head's.
    pub entries: Vec<HistoryEntry<'b>>,
}

impl VerifiedHistory<'_> {
    /// The manifests, oldest first.
    pub fn manifests(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.entries.iter().map(|entry| entry.manifest.as_ref())
    }

    /// The newest manifest (the one in force).
    #[must_use]
    pub fn latest_manifest(&self) -> Option<&[u8]> {
        self.entries.last().map(|entry| entry.manifest.as_ref())
    }

    /// The generation: the number of transitions in the chain.
    #[must_use]
    pub fn generation(&self) -> usize {
        self.entries.len()
    }

    /// Copies borrowed manifests so the history outlives the blob store.
    #[must_use]
    pub fn into_owned(self) -> VerifiedHistory<'static> {
        VerifiedHistory {
            head: self.head,
            entries: self
                .entries
                .into_iter()
                .map(|entry| HistoryEntry {
                    transition_hash: entry.transition_hash,
                    transition: entry.transition,
                    manifest: Cow::Owned(entry.manifest.into_owned()),
                })
                .collect(),
        }
    }
}

/// Verifies a whole history: decodes the encoded head and checks its signature with the
/// transaction signing public key first, then walks from the head's transition to the zero
/// hash, re-hashing each transition and its manifest against their content addresses.
pub fn verify_history<'b, B: BlobLookup + ?Sized>(
    head: &[u8],
    key: &VerifyingKey,
    blobs: &'b B,
    limits: HistoryLimits,
) -> Result<VerifiedHistory<'b>, HistoryError> {
    let head = LatestTransition::decode(head)?;
    head.verify(key)?;
    if head.transition_hash == ZERO_HASH {
        return Err(HistoryError::EmptyHistory);
    }

    let mut entries = Vec::new();
    let mut next = head.transition_hash;
    while next != ZERO_HASH {
        let position = entries.len();
        let WalkedTransition {
            transition_hash,
            transition,
        } = load_transition(blobs, &next, position, limits)?;
        let manifest = load_blob(
            blobs,
            BlobKind::Manifest,
            &transition.manifest_hash,
            position,
        )?;
        next = transition.previous_transition_hash;
        entries.push(HistoryEntry {
            transition_hash,
            transition,
            manifest,
        });
    }
    entries.reverse();
    Ok(VerifiedHistory { head, entries })
}
