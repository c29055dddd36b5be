//! The Coordinator's state machine.
//!
//! A [`State`] is immutable once built: seed engine, manifest, CA, signed head, generation and
//! the history served to users. The `Guard` holds the current one and replaces it only with
//! a compare-and-swap of the pointer, so readers never lock for long and never see half an
//! update. The store's `transitions/latest` is the single source of truth: a state is only
//! built after its head was published there by compare-and-swap.
//!
//! Phases, as seen by the APIs ([`Phase`]):
//! - `Uninitialized`: no state and no head in the store.
//! - `NeedsRecovery`: no state, but a head in the store (after a restart; the seed is unknown).
//! - `Active`: a state that is not stale.
//! - `Stale`: a state whose head another replica has moved past: the stored head is signed with
//!   this Coordinator's own history key and is not an ancestor of the held head.
//! - `Tampered`: a state that found a stored head no replica of its deployment can have written
//!   (not signed with its history key, a strict ancestor of the held head, undecodable or
//!   deleted). It stops serving until the store holds its head again; it never recovers from
//!   that head (`Guard::observe_stored_head`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use contrast_attest::{AppraisalPolicy, AtlsValidator, CrlPolicy, VcekCache, Verifier};
use contrast_ca::{Ca, CaCertificate, MeshCaKey};
use contrast_core::history::{BlobKind, Hash, LatestTransition, Transition, ZERO_HASH};
use contrast_core::manifest::ManifestDocument;
use contrast_core::seed::SeedEngine;
use contrast_store::{HistoryStore, HistoryStoreError, Store};

use crate::environment::{Clock, Entropy, Rng};

/// The Coordinator's state for one manifest generation.
pub struct State {
    seed_engine: Arc<SeedEngine>,
    manifest: ManifestDocument,
    ca: Ca,
    latest: LatestTransition,
    generation: usize,
    history: Arc<HistoryView>,
    mesh_validator: AtlsValidator,
    stale: AtomicBool,
    tampered: Mutex<Option<Tampering>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("generation", &self.generation)
            .field("head", &hex::encode(self.latest.transition_hash))
            .field("stale", &self.is_stale())
            .field("tampered", &self.tampering())
            .finish_non_exhaustive()
    }
}

/// The history served to users (get manifests, `/attest`): every manifest, oldest first, and
/// every policy any of them references, by hash.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct HistoryView {
    /// Raw manifests, oldest first.
    pub manifests: Vec<Vec<u8>>,
    /// Referenced policies (initdata documents) by SHA-256.
    pub policies: BTreeMap<Hash, Vec<u8>>,
}

impl State {
    /// The seed engine (workload secrets, history key, root key). Never handed out: every
    /// use of the seed is a rule of this crate.
    pub(crate) fn seed_engine(&self) -> &SeedEngine {
        &self.seed_engine
    }

    /// The seed engine, shared with the next generation.
    pub(crate) fn seed_engine_arc(&self) -> Arc<SeedEngine> {
        Arc::clone(&self.seed_engine)
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &ManifestDocument {
        &self.manifest
    }

    /// The CA of this generation (its keys stay in this crate).
    pub(crate) fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The root CA certificate: the same key, subject and key identifier for every generation
    /// of a seed.
    pub fn root_ca(&self) -> &CaCertificate {
        self.ca.root()
    }

    /// The mesh CA certificate of this generation (rotated by every set and user recovery).
    pub fn mesh_ca(&self) -> &CaCertificate {
        self.ca.mesh_ca()
    }

    /// The signed head this state was built on.
    pub fn latest(&self) -> &LatestTransition {
        &self.latest
    }

    /// The number of transitions in the history.
    pub fn generation(&self) -> usize {
        self.generation
    }

    /// The history served to users.
    pub fn history(&self) -> &HistoryView {
        &self.history
    }

    /// The validator for workloads attesting to the mesh API under this manifest.
    pub fn mesh_validator(&self) -> &AtlsValidator {
        &self.mesh_validator
    }

    /// Whether another replica has moved the stored head past this state.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// The tampering found in the store while this state was held, until the store holds its
    /// head again.
    pub fn tampering(&self) -> Option<Tampering> {
        self.tampered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_tampering(&self, tampering: Option<Tampering>) {
        *self.tampered.lock().unwrap_or_else(PoisonError::into_inner) = tampering;
    }
}

/// A stored head that no replica of this deployment can have written: the held state keeps its
/// seed and stops serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Tampering {
    /// The stored head's signature does not verify under this Coordinator's history key: it was
    /// written by someone without the seed.
    #[error(
        "the stored head {} is not signed by this coordinator's history key",
        hex::encode(.head)
    )]
    ForeignHead {
        /// The stored transition hash.
        head: Hash,
    },
    /// The stored head is a strict ancestor of the held one: an older, validly signed head was
    /// written back (a rollback; heads only move forward, by compare-and-swap).
    #[error(
        "the stored head {} is an ancestor of the held head {}: the history was rolled back",
        hex::encode(.head),
        hex::encode(.held)
    )]
    Rollback {
        /// The stored transition hash.
        head: Hash,
        /// The held transition hash.
        held: Hash,
    },
    /// The stored head does not decode.
    #[error("the stored head does not decode: {reason}")]
    Undecodable {
        /// The decoder's message.
        reason: String,
    },
    /// The stored head was deleted while a state is held.
    #[error(
        "the stored head was deleted while this coordinator holds head {}",
        hex::encode(.held)
    )]
    Deleted {
        /// The held transition hash.
        held: Hash,
    },
}

impl Tampering {
    /// A short, stable label for metrics: `foreign_head`, `rollback`, `undecodable`, `deleted`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ForeignHead { .. } => "foreign_head",
            Self::Rollback { .. } => "rollback",
            Self::Undecodable { .. } => "undecodable",
            Self::Deleted { .. } => "deleted",
        }
    }
}

/// What the store's head means for the held state ([`crate::Coordinator::observe_head`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadObservation {
    /// No state is held: there is nothing to compare with.
    NoState,
    /// The stored head is the held one (or this process's own update being published).
    Current,
    /// Another replica moved the history on (the head is signed with this Coordinator's key):
    /// the state is stale until recovered from a peer.
    Stale,
    /// The store was tampered with: the state stops serving.
    Tampered(Tampering),
}

/// The phase of the Coordinator (upstream's `GetState` outcomes).
#[derive(Debug, Clone)]
pub enum Phase {
    /// No history anywhere: the first manifest may be set.
    Uninitialized,
    /// A history exists in the store but this process does not hold its seed.
    NeedsRecovery,
    /// Serving.
    Active(Arc<State>),
    /// Another replica wrote a newer head: refusing until recovered from a peer.
    Stale(Arc<State>),
    /// The store holds a head no replica can have written: refusing until it holds this
    /// state's head again.
    Tampered(Arc<State>, Tampering),
}

impl Phase {
    /// The name used in logs, metrics and probes.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Uninitialized => "uninitialized",
            Phase::NeedsRecovery => "needs-recovery",
            Phase::Active(_) => "active",
            Phase::Stale(_) => "stale",
            Phase::Tampered(..) => "tampered",
        }
    }
}

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpdateError {
    /// Storing or publishing failed (including losing the head compare-and-swap).
    #[error(transparent)]
    History(#[from] HistoryStoreError),
    /// The CA could not be built.
    #[error("building the CA: {0}")]
    Ca(#[from] contrast_ca::CaError),
}

/// Why a recovery failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResetError<E> {
    /// There is no history to recover.
    #[error("no state to recover from")]
    NoHistory,
    /// The authorizer refused.
    #[error(transparent)]
    Unauthorized(E),
    /// The seed does not verify the stored head, or the history is corrupt.
    #[error("the history does not verify with the recovered seed: {0}")]
    Verification(HistoryStoreError),
    /// The head moved between the unverified and the verified read.
    #[error(
        "coordinator state was updated concurrently: the head moved from {} to {} during recovery",
        hex::encode(.read),
        hex::encode(.verified)
    )]
    HeadMoved {
        /// The head read before authorizing.
        read: Hash,
        /// The head the verified load found.
        verified: Hash,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(HistoryStoreError),
    /// The CA could not be built.
    #[error("building the CA: {0}")]
    Ca(#[from] contrast_ca::CaError),
    /// A stored manifest does not parse.
    #[error("stored manifest {index} does not parse: {reason}")]
    Manifest {
        /// Position in the history, oldest first.
        index: usize,
        /// The parse error.
        reason: String,
    },
    /// Another recovery or update replaced the state meanwhile.
    #[error("coordinator state was updated concurrently during recovery")]
    Replaced,
    /// The recovery brings another seed than the one the held (stale) state was built from.
    #[error("the recovered seed is not the one this coordinator holds")]
    DifferentSeed,
    /// The verified history does not contain the transition the caller required.
    #[error(
        "the stored history (head {}) does not contain the transition {} seen earlier: it was rolled back",
        hex::encode(.head),
        hex::encode(.required)
    )]
    RolledBack {
        /// The transition the caller saw earlier.
        required: Hash,
        /// The stored head.
        head: Hash,
    },
}

impl<E> ResetError<E> {
    /// Separates the authorizer's own refusal from the recovery's failures.
    pub(crate) fn split(self) -> Result<ResetError<std::convert::Infallible>, E> {
        Ok(match self {
            Self::Unauthorized(error) => return Err(error),
            Self::NoHistory => ResetError::NoHistory,
            Self::Verification(error) => ResetError::Verification(error),
            Self::HeadMoved { read, verified } => ResetError::HeadMoved { read, verified },
            Self::Store(error) => ResetError::Store(error),
            Self::Ca(error) => ResetError::Ca(error),
            Self::Manifest { index, reason } => ResetError::Manifest { index, reason },
            Self::Replaced => ResetError::Replaced,
            Self::DifferentSeed => ResetError::DifferentSeed,
            Self::RolledBack { required, head } => ResetError::RolledBack { required, head },
        })
    }
}

/// What recovery learned: the seed engine and the mesh CA key to continue with.
pub(crate) struct Recovered {
    /// The seed engine built from the recovered seed and salt.
    pub(crate) seed_engine: Arc<SeedEngine>,
    /// The mesh CA key: the peer's (peer recovery) or a new one (user recovery).
    pub(crate) mesh_key: MeshCaKey,
}

/// Holds the current state and the history store it is built on.
pub(crate) struct Guard<S> {
    current: RwLock<Option<Arc<State>>>,
    /// The head an update of this process is publishing: between its compare-and-swap and the
    /// swap of the in-memory state the watch sees it, and it is ours, not another replica's.
    publishing: Mutex<Option<Hash>>,
    history: HistoryStore<S>,
    vcek_cache: Arc<VcekCache>,
    crl_policy: CrlPolicy,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

impl<S> std::fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field(
                "current",
                &*self.current.read().unwrap_or_else(PoisonError::into_inner),
            )
            .finish_non_exhaustive()
    }
}

impl<S: Store> Guard<S> {
    /// A guard without state over `history`. `crl_policy` goes into every mesh validator, which
    /// share one cache of verified VCEKs holding `vcek_cache_capacity` chains.
    pub(crate) fn new(
        history: HistoryStore<S>,
        crl_policy: CrlPolicy,
        vcek_cache_capacity: usize,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            current: RwLock::new(None),
            publishing: Mutex::new(None),
            history,
            vcek_cache: Arc::new(VcekCache::new(vcek_cache_capacity)),
            crl_policy,
            clock,
            entropy,
        }
    }

    /// The history store.
    pub(crate) fn history(&self) -> &HistoryStore<S> {
        &self.history
    }

    /// The clock.
    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The randomness, as a generator.
    pub(crate) fn rng(&self) -> Rng<'_> {
        Rng(&*self.entropy)
    }

    /// The state held in memory, stale or not.
    pub(crate) fn current(&self) -> Option<Arc<State>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The state if it is active (no store access: the mesh API's per-connection check).
    pub(crate) fn active(&self) -> Option<Arc<State>> {
        self.current()
            .filter(|state| !state.is_stale() && state.tampering().is_none())
    }

    /// The phase; reads the store only when no state is held.
    pub(crate) async fn phase(&self) -> Result<Phase, HistoryStoreError> {
        match self.current() {
            Some(state) => Ok(match state.tampering() {
                Some(tampering) => Phase::Tampered(state, tampering),
                None if state.is_stale() => Phase::Stale(state),
                None => Phase::Active(state),
            }),
            None if self.history.has_latest().await? => Ok(Phase::NeedsRecovery),
            None => Ok(Phase::Uninitialized),
        }
    }

    /// Publishes `manifest` as the next generation after `old` (upstream's `UpdateState`):
    /// stores the policies, the manifest and the transition, moves the signed head by
    /// compare-and-swap (a lost race is [`HistoryStoreError::Conflict`]), makes a new random
    /// mesh CA key and swaps the in-memory state.
    pub(crate) async fn update(
        &self,
        old: Option<&Arc<State>>,
        seed_engine: Arc<SeedEngine>,
        manifest: ManifestDocument,
        policies: Vec<Vec<u8>>,
        expected_previous: Option<&Hash>,
    ) -> Result<Arc<State>, UpdateError> {
        let next = Transition {
            manifest_hash: manifest.hash(),
            previous_transition_hash: old.map_or(ZERO_HASH, |state| state.latest.transition_hash),
        }
        .hash();
        *self.publishing() = Some(next);
        let update = self
            .history
            .update(
                old.map(|state| &state.latest),
                &manifest,
                &policies,
                expected_previous,
                seed_engine.history_signing_key(),
                &mut self.rng(),
            )
            .await;
        let update = match update {
            Ok(update) => update,
            Err(error) => {
                *self.publishing() = None;
                // The watch may have taken another replica's identical head for ours while
                // `publishing` said so: judge the stored head again.
                let _ = self.observe_stored_head().await;
                return Err(error.into());
            }
        };

        let mut view = HistoryView {
            manifests: old
                .map(|state| state.history.manifests.clone())
                .unwrap_or_default(),
            policies: old
                .map(|state| state.history.policies.clone())
                .unwrap_or_default(),
        };
        view.manifests.push(manifest.raw().to_vec());
        let referenced: Vec<String> = manifest.manifest().policies.keys().cloned().collect();
        for (hash, policy) in update.policy_hashes.iter().zip(policies) {
            if referenced.contains(&hex::encode(hash)) {
                view.policies.insert(*hash, policy);
            }
        }

        let state = self.build_state(
            seed_engine,
            manifest,
            MeshCaKey::generate(&mut self.rng()),
            update.latest,
            old.map_or(1, |state| state.generation + 1),
            view,
        );
        let state = match state {
            Ok(state) => state,
            Err(error) => {
                // The head moved on without us: what we hold is stale.
                *self.publishing() = None;
                if let Some(current) = self.current() {
                    current.stale.store(true, Ordering::Release);
                }
                return Err(error.into());
            }
        };
        // If the swap fails another update built on this one already happened; the caller
        // still gets the state its request produced (as upstream).
        self.swap(old, &state);
        *self.publishing() = None;
        Ok(state)
    }

    /// Recovers from the stored history (upstream's `ResetState`): reads the head without
    /// verifying it, lets `authorize` inspect that head's manifest and produce the seed engine
    /// and mesh key, verifies the whole history with the derived key, requires the verified
    /// head to be the one read before (and the history to contain `must_contain`, when given), and
    /// swaps the state in if it is still `old`.
    pub(crate) async fn reset<E>(
        &self,
        old: Option<&Arc<State>>,
        must_contain: Option<&Hash>,
        authorize: impl AsyncFnOnce(&ManifestDocument) -> Result<Recovered, E>,
    ) -> Result<Arc<State>, ResetError<E>> {
        let unverified = self
            .history
            .latest_unverified()
            .await
            .map_err(ResetError::Store)?
            .ok_or(ResetError::NoHistory)?;
        let manifest = self
            .unverified_manifest(&unverified.transition_hash)
            .await?;
        let recovered = authorize(&manifest)
            .await
            .map_err(ResetError::Unauthorized)?;
        // A stale state keeps its seed: whoever recovers it (a user, a peer) must bring the
        // same one, never a history of another seed found in the store.
        if let Some(old) = old
            && old.seed_engine.history_verifying_key()
                != recovered.seed_engine.history_verifying_key()
        {
            return Err(ResetError::DifferentSeed);
        }

        let verifying_key = recovered.seed_engine.history_verifying_key();
        let history = self
            .history
            .load(&verifying_key)
            .await
            .map_err(ResetError::Verification)?
            .ok_or(ResetError::NoHistory)?;
        if history.head.transition_hash != unverified.transition_hash {
            return Err(ResetError::HeadMoved {
                read: unverified.transition_hash,
                verified: history.head.transition_hash,
            });
        }

        let mut view = HistoryView::default();
        let mut policy_hashes = Vec::new();
        let mut required = Vec::new();
        let newest = history.generation().saturating_sub(1);
        for (index, raw) in history.manifests().enumerate() {
            let parsed =
                ManifestDocument::parse(raw.to_vec()).map_err(|e| ResetError::Manifest {
                    index,
                    reason: e.to_string(),
                })?;
            for key in parsed.manifest().policies.keys() {
                if let Ok(hash) = contrast_core::hexstring::decode_array::<32>(key) {
                    policy_hashes.push(hash);
                    if index == newest {
                        required.push(hash);
                    }
                }
            }
            view.manifests.push(raw.to_vec());
        }
        // A caller that saw a transition earlier recovers only a history that contains it: a
        // store rolled back to an older, validly signed head is refused before anything changes.
        if let Some(must_contain) = must_contain
            && !contrast_core::history::rebuild_chain(&view.manifests)
                .iter()
                .any(|transition| transition.hash() == *must_contain)
        {
            return Err(ResetError::RolledBack {
                required: *must_contain,
                head: history.head.transition_hash,
            });
        }
        policy_hashes.sort_unstable();
        policy_hashes.dedup();
        // Only the manifest in force needs its policies; an old manifest's deleted policy is
        // served no more, and does not block recovery.
        let policies = self
            .history
            .policies_present(&policy_hashes)
            .await
            .map_err(ResetError::Store)?;
        for (hash, policy) in policy_hashes.into_iter().zip(policies) {
            match policy {
                Some(policy) => {
                    view.policies.insert(hash, policy);
                }
                None if required.contains(&hash) => {
                    return Err(ResetError::Store(HistoryStoreError::MissingPolicy {
                        policy_hash: hex::encode(hash),
                    }));
                }
                None => tracing::warn!(
                    policy = %hex::encode(hash),
                    "a policy of an older manifest is missing from the store; not serving it"
                ),
            }
        }

        let generation = history.generation();
        let latest_manifest = history
            .latest_manifest()
            .map(<[u8]>::to_vec)
            .ok_or(ResetError::NoHistory)?;
        let manifest =
            ManifestDocument::parse(latest_manifest).map_err(|e| ResetError::Manifest {
                index: generation.saturating_sub(1),
                reason: e.to_string(),
            })?;
        let state = self.build_state(
            recovered.seed_engine,
            manifest,
            recovered.mesh_key,
            history.head,
            generation,
            view,
        )?;
        if self.swap(old, &state) {
            Ok(state)
        } else {
            Err(ResetError::Replaced)
        }
    }

    fn publishing(&self) -> std::sync::MutexGuard<'_, Option<Hash>> {
        self.publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the held state with `new` if it is still `old` (compared by pointer); returns
    /// whether it did.
    fn swap(&self, old: Option<&Arc<State>>, new: &Arc<State>) -> bool {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let unchanged = match (current.as_ref(), old) {
            (Some(now), Some(old)) => Arc::ptr_eq(now, old),
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            *current = Some(Arc::clone(new));
        }
        unchanged
    }

    /// Reads the store's head and judges it against the held state (read first, so the
    /// stored head is at least as new as the held one for this process's own updates):
    /// - not signed with the held state's history key: tampering, whatever its hash;
    /// - the held head, or the one this process is publishing: current (a repaired store
    ///   clears an earlier tampering);
    /// - signed with the held state's history key and not an ancestor of its head: another
    ///   replica moved on, the state is stale;
    /// - a strict ancestor (a rollback), an undecodable or a deleted head: tampering.
    ///
    /// On tampering the state stops serving and keeps its seed.
    ///
    /// If the held state was replaced meanwhile (an update or recovery of this process), the
    /// new one is judged.
    pub(crate) async fn observe_stored_head(&self) -> Result<HeadObservation, HistoryStoreError> {
        loop {
            let Some(state) = self.current() else {
                return Ok(HeadObservation::NoState);
            };
            let observation = self.judge_stored_head(&state).await?;
            let still_held = self
                .current()
                .is_some_and(|current| Arc::ptr_eq(&current, &state));
            if !still_held {
                continue;
            }
            match &observation {
                HeadObservation::Current => {
                    if let Some(tampering) = state.tampering() {
                        tracing::info!(
                            from = "tampered",
                            state = "active",
                            %tampering,
                            "the store holds this state's head again: serving"
                        );
                    }
                    state.set_tampering(None);
                }
                HeadObservation::Stale => {
                    state.set_tampering(None);
                    state.stale.store(true, Ordering::Release);
                }
                HeadObservation::Tampered(tampering) => {
                    state.set_tampering(Some(tampering.clone()));
                }
                HeadObservation::NoState => {}
            }
            return Ok(match observation {
                HeadObservation::Current if state.is_stale() => HeadObservation::Stale,
                other => other,
            });
        }
    }

    async fn judge_stored_head(&self, state: &State) -> Result<HeadObservation, HistoryStoreError> {
        let held = state.latest.transition_hash;
        let stored = match self.history.latest_unverified().await {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Ok(HeadObservation::Tampered(Tampering::Deleted { held }));
            }
            Err(HistoryStoreError::Corruption(error)) => {
                return Ok(HeadObservation::Tampered(Tampering::Undecodable {
                    reason: error.to_string(),
                }));
            }
            Err(error) => return Err(error),
        };
        let head = stored.transition_hash;
        // Even the held hash counts only under the held key: the same manifest set on a wiped
        // store under another seed gives the same hash.
        if stored
            .verify(&state.seed_engine.history_verifying_key())
            .is_err()
        {
            return Ok(HeadObservation::Tampered(Tampering::ForeignHead { head }));
        }
        if head == held || *self.publishing() == Some(head) {
            return Ok(HeadObservation::Current);
        }
        if self.history.chain_contains(&held, &head).await? {
            return Ok(HeadObservation::Tampered(Tampering::Rollback {
                head,
                held,
            }));
        }
        Ok(HeadObservation::Stale)
    }

    /// The head's manifest, read without verifying the head's signature.
    async fn unverified_manifest<E>(
        &self,
        transition_hash: &Hash,
    ) -> Result<ManifestDocument, ResetError<E>> {
        let missing = |kind: BlobKind, hash: Hash| {
            ResetError::Store(HistoryStoreError::Corruption(
                contrast_core::history::HistoryError::MissingBlob {
                    kind,
                    hash,
                    position: 0,
                },
            ))
        };
        let transition = self
            .history
            .get_blob(BlobKind::Transition, transition_hash)
            .await
            .map_err(ResetError::Store)?
            .ok_or_else(|| missing(BlobKind::Transition, *transition_hash))?;
        let transition = Transition::decode(&transition)
            .map_err(|e| ResetError::Store(HistoryStoreError::Corruption(e)))?;
        let manifest = self
            .history
            .get_blob(BlobKind::Manifest, &transition.manifest_hash)
            .await
            .map_err(ResetError::Store)?
            .ok_or_else(|| missing(BlobKind::Manifest, transition.manifest_hash))?;
        ManifestDocument::parse(manifest).map_err(|e| ResetError::Manifest {
            index: 0,
            reason: e.to_string(),
        })
    }

    fn build_state(
        &self,
        seed_engine: Arc<SeedEngine>,
        manifest: ManifestDocument,
        mesh_key: MeshCaKey,
        latest: LatestTransition,
        generation: usize,
        history: HistoryView,
    ) -> Result<Arc<State>, contrast_ca::CaError> {
        let ca = Ca::new(
            seed_engine.root_ca_key(),
            mesh_key,
            self.clock.now(),
            &mut self.rng(),
        )?;
        let mesh_validator = AtlsValidator::new(
            Verifier::new(
                &manifest.manifest().reference_values.snp,
                AppraisalPolicy::default().with_crl(self.crl_policy),
            )
            .with_cache(Arc::clone(&self.vcek_cache)),
        );
        Ok(Arc::new(State {
            seed_engine,
            manifest,
            ca,
            latest,
            generation,
            history: Arc::new(history),
            mesh_validator,
            stale: AtomicBool::new(false),
            tampered: Mutex::new(None),
        }))
    }
}
