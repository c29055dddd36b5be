//! The Coordinator: its state, store, clock, randomness and peers in one value that every
//! transport shares.

use std::sync::Arc;

use contrast_attest::CrlPolicy;
use contrast_core::history::LatestTransition;
use contrast_store::{HistoryStore, Store};

use crate::environment::{Clock, Entropy};
use crate::error::Error;
use crate::state::{Guard, Phase, State};

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
    /// under (no state, no handshake).
    #[must_use]
    pub fn active(&self) -> Option<Arc<State>> {
        self.guard.active()
    }

    /// The history store (for a watch on its head, or a liveness check).
    pub fn history_store(&self) -> &HistoryStore<S> {
        self.guard.history()
    }

    /// Takes note of the store's head `raw` (`transitions/latest`, e.g. from a watch): a head
    /// that is neither this state's nor one of its ancestors means another replica moved the
    /// history, and the state is stale from now on. Returns whether it is stale.
    ///
    /// # Errors
    /// [`Error::Internal`] if `raw` does not decode or the store fails.
    pub async fn observe_head(&self, raw: &[u8]) -> Result<bool, Error> {
        let head = LatestTransition::decode(raw)
            .map_err(|e| Error::internal("decoding transitions/latest", e))?;
        let stale = self
            .guard
            .mark_stale_unless_ours(&head.transition_hash)
            .await
            .map_err(|e| Error::internal("checking the stored head", e))?;
        if stale {
            tracing::warn!(
                head = %hex::encode(head.transition_hash),
                "another replica moved the history: this Coordinator is stale"
            );
        }
        Ok(stale)
    }
}
