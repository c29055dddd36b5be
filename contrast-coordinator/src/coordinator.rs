//! The Coordinator: its state, store, clock, randomness and peers in one value that every
//! transport shares.

use std::sync::Arc;

use contrast_attest::CrlPolicy;
use contrast_store::{HistoryStore, Store};

use crate::admission::UpdateSlots;
use crate::environment::{Clock, Entropy};
use crate::error::Error;
use crate::state::{Guard, HeadObservation, Phase, State};

/// How the Coordinator appraises workloads. Strict by default.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Options {
    /// How a missing AMD CRL in a workload's evidence is treated.
    pub crl_policy: CrlPolicy,
    /// How many verified VCEK chains the mesh validators keep.
    pub vcek_cache_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            crl_policy: CrlPolicy::Required,
            vcek_cache_capacity: 4096,
        }
    }
}

impl Options {
    /// With `crl_policy` for workloads' evidence.
    #[must_use]
    pub fn with_crl_policy(mut self, crl_policy: CrlPolicy) -> Self {
        self.crl_policy = crl_policy;
        self
    }

    /// With room for `capacity` verified VCEK chains (at least 1).
    #[must_use]
    pub fn with_vcek_cache_capacity(mut self, capacity: usize) -> Self {
        self.vcek_cache_capacity = capacity;
        self
    }
}

/// The Coordinator's core over the store `S`, finding ready replicas through `P`.
///
/// Every request method is safe to call concurrently: the state of a generation is immutable
/// and replaced by pointer compare-and-swap, and the store's head moves only by
/// compare-and-swap.
pub struct Coordinator<S, P> {
    pub(crate) guard: Guard<S>,
    pub(crate) peers: P,
    /// Manifest updates in progress ([`Coordinator::admit_update`]).
    pub(crate) updates: UpdateSlots,
}

impl<S, P> std::fmt::Debug for Coordinator<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<S: Store, P> Coordinator<S, P> {
    /// A Coordinator over `store` that holds no state yet: it is
    /// [`Uninitialized`](Phase::Uninitialized) or, if the store has a history,
    /// [`NeedsRecovery`](Phase::NeedsRecovery).
    pub fn new(
        store: HistoryStore<S>,
        peers: P,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        options: Options,
    ) -> Self {
        Self {
            guard: Guard::new(
                store,
                options.crl_policy,
                options.vcek_cache_capacity,
                clock,
                entropy,
            ),
            peers,
            updates: UpdateSlots::default(),
        }
    }

    /// The phase; reads the store only when no state is held.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn phase(&self) -> Result<Phase, Error> {
        self.guard
            .phase()
            .await
            .map_err(|e| Error::internal("reading the state", e))
    }

    /// The state if it is active, without store access: what a mesh connection is accepted
    /// under (without one, the mesh API answers every call with the reason).
    #[must_use]
    pub fn active(&self) -> Option<Arc<State>> {
        self.guard.active()
    }

    /// The history store (for a watch on its head, or a liveness check).
    pub fn history_store(&self) -> &HistoryStore<S> {
        self.guard.history()
    }

    /// Judges the store's head (`transitions/latest`) against the held state, e.g. when a
    /// watch reports a change: another replica's newer head makes the state stale; a head no
    /// replica can have written (not signed with this Coordinator's history key, a rollback to
    /// an ancestor, undecodable or deleted) is tampering, and the state stops serving (it is
    /// logged here; count it). A store that holds the state's head again clears the tampering.
    /// The store is read anew, so a late or garbled watch event cannot mislead it.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn observe_head(&self) -> Result<HeadObservation, Error> {
        let observation = self
            .guard
            .observe_stored_head()
            .await
            .map_err(|e| Error::internal("checking the stored head", e))?;
        match &observation {
            HeadObservation::Stale => tracing::warn!(
                from = "active",
                state = "stale",
                "another replica moved the history: this Coordinator is stale until it recovers \
                 from a peer"
            ),
            HeadObservation::Tampered(tampering) => tracing::error!(
                from = "active",
                state = "tampered",
                %tampering,
                "the store was tampered with: this Coordinator keeps its state and stops serving"
            ),
            HeadObservation::Current | HeadObservation::NoState => {}
        }
        Ok(observation)
    }
}
