//! The manifest history on top of any [`Store`]: content-addressed policies, manifests and
//! transitions, and the signed head `transitions/latest` advanced only by compare-and-swap.
//!
//! The formats and checks are contrast-core's ([`contrast_core::history`]); this module does the
//! storage. An [`update`](HistoryStore::update) writes blobs first and publishes last: blobs are
//! content-addressed, so a crash or a lost race between the steps leaves only unreferenced blobs,
//! which are harmless; the head compare-and-swap is the single step that makes a new state
//! visible.
//!
//! Loading a history reads the store in two batches (every stored transition, then the manifests
//! of the chain) and hands the snapshot to [`verify_history`], which checks the head signature
//! first and then every content address.
//!
//! Errors keep three outcomes apart: [`HistoryStoreError::Conflict`] (another writer advanced
//! the head), [`HistoryStoreError::Corruption`] / [`HistoryStoreError::CorruptBlob`] (stored
//! data fails a check) and [`HistoryStoreError::Store`] (the storage failed).

use std::borrow::Cow;
use std::collections::HashMap;

use contrast_core::hexstring;
use contrast_core::history::{
    BlobKind, BlobLookup, Hash, HistoryError, HistoryLimits, LatestTransition, Transition,
    VerifiedHistory, WalkedTransition, ZERO_HASH, chain_contains, verify_history, walk_transitions,
};
use contrast_core::manifest::ManifestDocument;
use p384::ecdsa::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;

use crate::error::StoreError;
use crate::key::Key;
use crate::store::Store;

/// Why a history operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryStoreError {
    /// The head is no longer the one the caller read: another writer advanced it
    /// (upstream's `ErrConcurrentUpdate`).
    #[error(
        "coordinator state was updated concurrently: transitions/latest has changed since last read"
    )]
    Conflict,
    /// The caller's expected previous transition is not the current head (upstream's
    /// `ErrTransitionMismatch`).
    #[error(
        "previous transition mismatch: the update builds on {}, the current head is {}",
        hexstring::encode(.expected),
        hexstring::encode(.current)
    )]
    TransitionMismatch {
        /// The previous transition hash the caller named.
        expected: Hash,
        /// The current head's transition hash (zero when there is no history).
        current: Hash,
    },
    /// A policy key of the manifest has no stored policy.
    #[error("no policy provided for hash {policy_hash}")]
    MissingPolicy {
        /// The manifest's policy key, as written.
        policy_hash: String,
    },
    /// The head or the chain fails verification: malformed or wrongly signed head, missing or
    /// altered transition or manifest, malformed transition, too long.
    #[error("history is corrupt: {0}")]
    Corruption(#[from] HistoryError),
    /// A stored blob read on its own does not hash to its name.
    #[error("stored blob {key} is corrupt: it hashes to {}", hexstring::encode(.found))]
    CorruptBlob {
        /// The content-addressed key.
        key: Key,
        /// SHA-256 of what is stored.
        found: Hash,
    },
    /// The storage failed.
    #[error("history storage failed: {0}")]
    Store(#[source] StoreError),
}

impl HistoryStoreError {
    /// Whether stored data failed a check (as opposed to a conflict or a storage failure).
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            HistoryStoreError::Corruption(_) | HistoryStoreError::CorruptBlob { .. }
        )
    }
}

impl From<StoreError> for HistoryStoreError {
    fn from(error: StoreError) -> HistoryStoreError {
        match error {
            StoreError::Conflict { .. } => HistoryStoreError::Conflict,
            StoreError::Corrupt { key, found } => HistoryStoreError::CorruptBlob { key, found },
            other => HistoryStoreError::Store(other),
        }
    }
}

/// What an [`update`](HistoryStore::update) stored and published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The new signed head, now in `transitions/latest`.
    pub latest: LatestTransition,
    /// The new transition (its hash is `latest.transition_hash`).
    pub transition: Transition,
    /// The hashes of the stored policies, in the order given.
    pub policy_hashes: Vec<Hash>,
}

/// The manifest history kept in a [`Store`].
#[derive(Debug, Clone)]
pub struct HistoryStore<S> {
    store: S,
    limits: HistoryLimits,
}

/// Blobs read from the store for one walk, plus the addresses whose content did not match.
#[derive(Debug, Default)]
struct Snapshot {
    blobs: HashMap<(BlobKind, Hash), Vec<u8>>,
    corrupt: HashMap<(BlobKind, Hash), Hash>,
}

impl BlobLookup for Snapshot {
    fn get(&self, kind: BlobKind, hash: &Hash) -> Option<Cow<'_, [u8]>> {
        self.blobs
            .get(&(kind, *hash))
            .map(|blob| Cow::Borrowed(blob.as_slice()))
    }
}

impl Snapshot {
    /// contrast-core reports a blob the store refused as corrupt as missing; say what it was.
    fn explain(&self, error: HistoryError) -> HistoryError {
        match error {
            HistoryError::MissingBlob {
                kind,
                hash,
                position,
            } => match self.corrupt.get(&(kind, hash)) {
                Some(found) => HistoryError::HashMismatch {
                    kind,
                    expected: hash,
                    found: *found,
                    position,
                },
                None => HistoryError::MissingBlob {
                    kind,
                    hash,
                    position,
                },
            },
            other => other,
        }
    }

    async fn fill(
        &mut self,
        store: &impl Store,
        kind: BlobKind,
        hashes: &[Hash],
    ) -> Result<(), HistoryStoreError> {
        let keys: Vec<Key> = hashes.iter().map(|hash| Key::blob(kind, hash)).collect();
        for (hash, value) in hashes.iter().zip(store.get_many(&keys).await) {
            match value {
                Ok(Some(value)) => {
                    self.blobs.insert((kind, *hash), value);
                }
                // Gone since it was listed, or never stored: the walk reports it.
                Ok(None) => {}
                Err(StoreError::Corrupt { found, .. }) => {
                    self.corrupt.insert((kind, *hash), found);
                }
                Err(error) => return Err(HistoryStoreError::from(error)),
            }
        }
        Ok(())
    }
}

impl<S: Store> HistoryStore<S> {
    /// A history in `store` with the default [`HistoryLimits`].
    pub fn new(store: S) -> HistoryStore<S> {
        HistoryStore::with_limits(store, HistoryLimits::default())
    }

    /// A history in `store` whose walks follow at most `limits.max_transitions` transitions.
    pub fn with_limits(store: S, limits: HistoryLimits) -> HistoryStore<S> {
        HistoryStore { store, limits }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Stores a blob under `<kind>/<sha256>` and returns its hash.
    pub async fn put_blob(&self, kind: BlobKind, blob: &[u8]) -> Result<Hash, HistoryStoreError> {
        let hash = contrast_core::sha256(blob);
        self.store.put(&Key::blob(kind, &hash), blob).await?;
        Ok(hash)
    }

    /// Reads the blob `<kind>/<hash>`; its content is checked against the hash.
    pub async fn get_blob(
        &self,
        kind: BlobKind,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, HistoryStoreError> {
        Ok(self.store.get(&Key::blob(kind, hash)).await?)
    }

    /// Reads several policies by hash, in order, in one batch. A missing one is
    /// [`HistoryStoreError::MissingPolicy`], an altered one [`HistoryStoreError::CorruptBlob`].
    pub async fn policies(&self, hashes: &[Hash]) -> Result<Vec<Vec<u8>>, HistoryStoreError> {
        hashes
            .iter()
            .zip(self.policies_present(hashes).await?)
            .map(|(hash, policy)| {
                policy.ok_or_else(|| HistoryStoreError::MissingPolicy {
                    policy_hash: hexstring::encode(hash),
                })
            })
            .collect()
    }

    /// As [`HistoryStore::policies`], with `None` for a missing policy (one an old manifest
    /// referenced, which nothing needs any more).
    pub async fn policies_present(
        &self,
        hashes: &[Hash],
    ) -> Result<Vec<Option<Vec<u8>>>, HistoryStoreError> {
        let keys: Vec<Key> = hashes
            .iter()
            .map(|hash| Key::blob(BlobKind::Policy, hash))
            .collect();
        let mut policies = Vec::with_capacity(hashes.len());
        for value in self.store.get_many(&keys).await {
            policies.push(value?);
        }
        Ok(policies)
    }

    /// Whether `transitions/latest` exists (the history is initialized).
    pub async fn has_latest(&self) -> Result<bool, HistoryStoreError> {
        Ok(self.store.get(&Key::latest_transition()).await?.is_some())
    }

    /// The signed head, decoded but **not** verified (upstream's `GetLatestInsecure`).
    pub async fn latest_unverified(&self) -> Result<Option<LatestTransition>, HistoryStoreError> {
        match self.store.get(&Key::latest_transition()).await? {
            Some(encoded) => Ok(Some(LatestTransition::decode(&encoded)?)),
            None => Ok(None),
        }
    }

    /// The signed head, with its signature checked under the transaction signing key.
    pub async fn latest(
        &self,
        key: &VerifyingKey,
    ) -> Result<Option<LatestTransition>, HistoryStoreError> {
        let Some(latest) = self.latest_unverified().await? else {
            return Ok(None);
        };
        latest.verify(key)?;
        Ok(Some(latest))
    }

    /// Signs `new_transition_hash` and moves `transitions/latest` to it by compare-and-swap from
    /// `expected_old`, the head the caller last read (`None`: there was none). If the stored head
    /// is anything else, fails with [`HistoryStoreError::Conflict`].
    pub async fn set_latest(
        &self,
        expected_old: Option<&LatestTransition>,
        new_transition_hash: Hash,
        key: &SigningKey,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<LatestTransition, HistoryStoreError> {
        let latest = LatestTransition::sign(new_transition_hash, key, rng)?;
        let old = expected_old
            .map(LatestTransition::encode)
            .unwrap_or_default();
        self.store
            .compare_and_swap(&Key::latest_transition(), &old, &latest.encode())
            .await?;
        Ok(latest)
    }

    /// Upstream's `UpdateState` steps 2–7: checks `expected_previous` (if the caller gave one)
    /// against `expected_old`, stores every policy, checks that every policy key of the manifest
    /// has a stored policy, stores the manifest and the transition from `expected_old` (or the
    /// zero hash), then signs and publishes the new head by compare-and-swap.
    ///
    /// Nothing is visible until the last step; a failure before it leaves only unreferenced,
    /// content-addressed blobs. [`HistoryStoreError::Conflict`] means another writer advanced the
    /// head since `expected_old` was read.
    pub async fn update(
        &self,
        expected_old: Option<&LatestTransition>,
        manifest: &ManifestDocument,
        policies: &[Vec<u8>],
        expected_previous: Option<&Hash>,
        key: &SigningKey,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<Update, HistoryStoreError> {
        let current = expected_old.map_or(ZERO_HASH, |latest| latest.transition_hash);
        // Checked before anything is written: a caller building on another head changes nothing.
        if let Some(expected) = expected_previous
            && *expected != current
        {
            return Err(HistoryStoreError::TransitionMismatch {
                expected: *expected,
                current,
            });
        }
        let mut policy_hashes = Vec::with_capacity(policies.len());
        for policy in policies {
            policy_hashes.push(self.put_blob(BlobKind::Policy, policy).await?);
        }
        let stored: std::collections::HashSet<String> =
            policy_hashes.iter().map(hexstring::encode).collect();
        // Policy keys are compared as written, as upstream does: an upper-case key never matches.
        if let Some(missing) = manifest
            .manifest()
            .policies
            .keys()
            .find(|policy_key| !stored.contains(*policy_key))
        {
            return Err(HistoryStoreError::MissingPolicy {
                policy_hash: missing.clone(),
            });
        }

        let manifest_hash = self.put_blob(BlobKind::Manifest, manifest.raw()).await?;
        let transition = Transition {
            manifest_hash,
            previous_transition_hash: current,
        };
        let transition_hash = self
            .put_blob(BlobKind::Transition, &transition.encode())
            .await?;

        let latest = self
            .set_latest(expected_old, transition_hash, key, rng)
            .await?;
        Ok(Update {
            latest,
            transition,
            policy_hashes,
        })
    }

    /// Loads the whole history and verifies it with the transaction signing public key: the head
    /// signature first, then every transition and manifest against its content address. `None`
    /// if there is no head.
    pub async fn load(
        &self,
        key: &VerifyingKey,
    ) -> Result<Option<VerifiedHistory<'static>>, HistoryStoreError> {
        let Some(head) = self.store.get(&Key::latest_transition()).await? else {
            return Ok(None);
        };
        let mut snapshot = Snapshot::default();
        // A malformed head fails in `verify_history` before any blob is needed.
        if let Ok(latest) = LatestTransition::decode(&head) {
            self.prefetch_chain(&latest.transition_hash, &mut snapshot, true)
                .await?;
        }
        match verify_history(&head, key, &snapshot, self.limits) {
            Ok(history) => Ok(Some(history.into_owned())),
            Err(error) => Err(HistoryStoreError::Corruption(snapshot.explain(error))),
        }
    }

    /// The transitions from `head_hash` to the root, newest first, without any signature check
    /// (each transition is checked against its content address).
    pub async fn walk(&self, head_hash: &Hash) -> Result<Vec<WalkedTransition>, HistoryStoreError> {
        let mut snapshot = Snapshot::default();
        self.prefetch_chain(head_hash, &mut snapshot, false).await?;
        walk_transitions(head_hash, &snapshot, self.limits)
            .map_err(|error| HistoryStoreError::Corruption(snapshot.explain(error)))
    }

    /// Whether `candidate` is `head_hash` or one of its ancestors: a Coordinator whose own head
    /// is `head_hash` goes stale when the stored head is not.
    pub async fn chain_contains(
        &self,
        head_hash: &Hash,
        candidate: &Hash,
    ) -> Result<bool, HistoryStoreError> {
        if head_hash == candidate {
            return Ok(true);
        }
        let mut snapshot = Snapshot::default();
        self.prefetch_chain(head_hash, &mut snapshot, false).await?;
        chain_contains(head_hash, candidate, &snapshot, self.limits)
            .map_err(|error| HistoryStoreError::Corruption(snapshot.explain(error)))
    }

    /// Reads every stored transition in one batch, follows the chain from `head_hash` in memory,
    /// and (if asked) reads the chain's manifests in a second batch. Stops quietly at the first
    /// gap: the walk that follows reports it with its position.
    async fn prefetch_chain(
        &self,
        head_hash: &Hash,
        snapshot: &mut Snapshot,
        with_manifests: bool,
    ) -> Result<(), HistoryStoreError> {
        let transition_hashes: Vec<Hash> = self
            .store
            .list(BlobKind::Transition.as_str())
            .await?
            .iter()
            .filter_map(|name| {
                Key::from_parts(BlobKind::Transition.as_str(), name)
                    .ok()?
                    .content_hash()
            })
            .collect();
        snapshot
            .fill(&self.store, BlobKind::Transition, &transition_hashes)
            .await?;
        if !with_manifests {
            return Ok(());
        }

        let mut manifest_hashes = Vec::new();
        let mut next = *head_hash;
        while next != ZERO_HASH && manifest_hashes.len() < self.limits.max_transitions {
            let Some(transition) = snapshot
                .blobs
                .get(&(BlobKind::Transition, next))
                .and_then(|blob| Transition::decode(blob).ok())
            else {
                break;
            };
            manifest_hashes.push(transition.manifest_hash);
            next = transition.previous_transition_hash;
        }
        snapshot
            .fill(&self.store, BlobKind::Manifest, &manifest_hashes)
            .await
    }
}
