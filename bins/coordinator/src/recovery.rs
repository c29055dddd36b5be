//! Peer recovery: a Coordinator that needs recovery (after a restart) or is stale (another
//! replica moved the history) gets the seed, salt and mesh CA key from a ready peer.
//!
//! Each round, for each ready peer: read the stored head and its manifest without verifying
//! them, attest the peer's mesh API against that manifest's reference values pinned to its
//! coordinator policy hashes (mutual aTLS: the peer appraises us too and only answers a
//! `coordinator` role), receive seed, salt, mesh CA key and manifest, then verify the whole
//! stored history with the key derived from the seed and require its head to be the one read
//! first. The mesh CA key is the peer's, so every workload certificate stays valid.

use std::sync::Arc;
use std::time::Duration;

use contrast_attest::AtlsClient;
use contrast_ca::MeshCaKey;
use contrast_core::manifest::ManifestDocument;
use contrast_core::seed::SeedEngine;
use contrast_sdk::{ClientError, CoordinatorClient, coordinator_validator};
use tokio::sync::watch;

use crate::Coordinator;
use crate::state::{Phase, Recovered, ResetError, State};

/// Why recovering from one peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// The stored manifest yields no validator for the peer.
    #[error("the stored manifest does not describe its Coordinator: {0}")]
    Validator(#[from] contrast_sdk::DeploymentError),
    /// Talking to the peer failed (including its attestation, or its refusal of ours).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The peer's answer is unusable.
    #[error("the peer's answer is unusable: {0}")]
    Answer(String),
    /// The peer serves another manifest than the stored head's: it is at another head (ahead,
    /// behind or forked), so its state is not the one to continue from.
    #[error(
        "the peer serves another manifest (sha256 {}) than the stored head's (sha256 {}); not recovering from it",
        hex::encode(.peer),
        hex::encode(.stored)
    )]
    HeadDiffers {
        /// SHA-256 of the peer's manifest.
        peer: [u8; 32],
        /// SHA-256 of the stored head's manifest.
        stored: [u8; 32],
    },
}

/// The first attempt at startup may take this long before the startup probe passes anyway.
pub(crate) const STARTUP_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// One round: if recovery is needed, try every ready peer until one succeeds. Returns whether
/// this round recovered the state.
pub(crate) async fn recover_round(coordinator: &Coordinator) -> bool {
    let old = match coordinator.guard.phase().await {
        Ok(Phase::NeedsRecovery) => None,
        Ok(Phase::Stale(state)) => Some(state),
        Ok(Phase::Active(_) | Phase::Uninitialized) => return false,
        Err(error) => {
            tracing::warn!(%error, "peer recovery: reading the state");
            return false;
        }
    };
    let peers = coordinator.peers.ready_peers().await;
    if peers.is_empty() {
        tracing::debug!("peer recovery: no ready peers found");
        return false;
    }
    for peer in peers {
        match recover_from_peer(coordinator, old.as_ref(), &peer).await {
            Ok(state) => {
                coordinator.metrics.set_generation(state.generation());
                tracing::info!(
                    peer,
                    generation = state.generation(),
                    head = %hex::encode(state.latest().transition_hash),
                    "recovered from a peer"
                );
                return true;
            }
            Err(error) => tracing::warn!(peer, %error, "peer recovery failed"),
        }
    }
    false
}

async fn recover_from_peer(
    coordinator: &Coordinator,
    old: Option<&Arc<State>>,
    peer: &str,
) -> Result<Arc<State>, ResetError<PeerError>> {
    let issuer = Arc::clone(&coordinator.issuer);
    coordinator
        .guard
        .reset(old, async |manifest: &ManifestDocument| {
            let validator = coordinator_validator(manifest.manifest())?;
            let client =
                CoordinatorClient::new(peer, AtlsClient::new(validator).with_issuer(issuer));
            let answer = client.mesh_recover().await?.value;
            if answer.latest_manifest != manifest.raw() {
                return Err(PeerError::HeadDiffers {
                    peer: contrast_core::sha256(&answer.latest_manifest),
                    stored: manifest.hash(),
                });
            }
            let seed_engine = SeedEngine::new(&answer.seed, &answer.salt)
                .map_err(|e| PeerError::Answer(format!("seed or salt: {e}")))?;
            let pem = std::str::from_utf8(&answer.mesh_ca_key)
                .map_err(|_| PeerError::Answer("the mesh CA key is not PEM text".into()))?;
            let mesh_key = MeshCaKey::from_pem(pem)
                .map_err(|e| PeerError::Answer(format!("the mesh CA key: {e}")))?;
            Ok(Recovered {
                seed_engine: Arc::new(seed_engine),
                mesh_key,
            })
        })
        .await
}

/// Runs a round every `interval` until `shutdown`.
pub(crate) async fn run(
    coordinator: Arc<Coordinator>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        recover_round(&coordinator).await;
    }
}
