//! Peer recovery: a Coordinator that needs recovery (after a restart) or is stale (another
//! replica moved the history) continues from a ready peer's seed, salt and mesh CA key.
//!
//! The transport attests the peer against the stored head's manifest (its reference values,
//! pinned to its coordinator policies) and asks it; this module decides whether the answer is
//! the state to continue from: the peer must serve exactly the stored head's manifest, and the
//! history key derived from its seed must verify the whole stored history, whose head must still
//! be the one read first. The mesh CA key is the peer's, so every workload certificate stays
//! valid.

use std::future::Future;
use std::sync::Arc;

use contrast_ca::MeshCaKey;
use contrast_core::api::MeshRecoverResponse;
use contrast_core::manifest::ManifestDocument;
use contrast_core::seed::SeedEngine;
use contrast_store::Store;

use crate::coordinator::Coordinator;
use crate::error::{Error, PeerRecoveryError};
use crate::state::{Phase, Recovered, State};
use crate::user::reset_error;

/// Finds the replicas that are ready (active) now. User recovery is refused while there are
/// any, since they recover this Coordinator.
pub trait PeerDirectory: Send + Sync {
    /// The mesh API addresses of the ready peers, excluding this Coordinator. Discovery
    /// failures are the implementation's to log; they count as no peers.
    fn ready_peers(&self) -> impl Future<Output = Vec<String>> + Send;
}

/// No peers: a single replica.
impl PeerDirectory for () {
    async fn ready_peers(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A fixed list of peers, all taken as ready.
impl PeerDirectory for Vec<String> {
    async fn ready_peers(&self) -> Vec<String> {
        self.clone()
    }
}

/// The outcome of [`Coordinator::recover_from_peer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerRecovery {
    /// Nothing to recover: the Coordinator is active or uninitialized.
    NotNeeded,
    /// Recovered: the new state.
    Recovered(Arc<State>),
}

impl<S: Store, P> Coordinator<S, P> {
    /// Whether this Coordinator needs recovery now: it holds no seed for the stored history
    /// (after a restart), or it is stale. A transport asks its peers only then.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn needs_recovery(&self) -> Result<bool, Error> {
        Ok(matches!(
            self.phase().await?,
            Phase::NeedsRecovery | Phase::Stale(_)
        ))
    }

    /// How this Coordinator finds its ready peers.
    pub fn peers(&self) -> &P {
        &self.peers
    }

    /// Recovers from a peer if this Coordinator needs recovery or is stale. `ask` gets the
    /// stored head's manifest (read without verifying it: the seed is not known yet), attests
    /// the peer against it and returns the peer's answer; its error is the transport's.
    ///
    /// # Errors
    /// [`PeerRecoveryError::Peer`] (from `ask`), [`PeerRecoveryError::HeadDiffers`], a malformed
    /// answer, or [`PeerRecoveryError::Recovery`] (the seed does not verify the history, the
    /// head moved, the state was replaced, the store failed).
    pub async fn recover_from_peer<E>(
        &self,
        ask: impl AsyncFnOnce(&ManifestDocument) -> Result<MeshRecoverResponse, E>,
    ) -> Result<PeerRecovery, PeerRecoveryError<E>>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let old = match self.phase().await.map_err(PeerRecoveryError::Recovery)? {
            Phase::NeedsRecovery => None,
            Phase::Stale(state) => Some(state),
            Phase::Active(_) | Phase::Uninitialized => return Ok(PeerRecovery::NotNeeded),
            Phase::Tampered(_, tampering) => {
                return Err(PeerRecoveryError::Recovery(Error::Tampered(tampering)));
            }
        };
        let state = self
            .guard
            .reset(old.as_ref(), None, async |manifest: &ManifestDocument| {
                // Read without verification: at least it must be a valid manifest before its
                // reference values decide which peer is trusted with the seed.
                manifest
                    .manifest()
                    .validate()
                    .map_err(PeerRecoveryError::InvalidStoredManifest)?;
                let answer = ask(manifest).await.map_err(PeerRecoveryError::Peer)?;
                if answer.latest_manifest != manifest.raw() {
                    return Err(PeerRecoveryError::HeadDiffers {
                        peer: contrast_core::sha256(&answer.latest_manifest),
                        stored: manifest.hash(),
                    });
                }
                let seed_engine = SeedEngine::new(&answer.seed, &answer.salt)
                    .map_err(PeerRecoveryError::SeedOrSalt)?;
                let pem = std::str::from_utf8(&answer.mesh_ca_key).map_err(|_| {
                    PeerRecoveryError::MeshKey("the mesh CA key is not PEM text".into())
                })?;
                let mesh_key = MeshCaKey::from_pem(pem)
                    .map_err(|e| PeerRecoveryError::MeshKey(e.to_string()))?;
                Ok(Recovered {
                    seed_engine: Arc::new(seed_engine),
                    mesh_key,
                })
            })
            .await
            .map_err(|error| match error.split() {
                Ok(failure) => PeerRecoveryError::Recovery(reset_error(failure)),
                Err(refusal) => refusal,
            })?;
        tracing::info!(
            from = "needs-recovery",
            state = "active",
            generation = state.generation(),
            head = %hex::encode(state.latest().transition_hash),
            "recovered from a peer"
        );
        Ok(PeerRecovery::Recovered(state))
    }
}
