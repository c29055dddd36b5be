//! Peer recovery's transport: each round, for each ready peer, attest the peer's mesh API
//! against the stored head's manifest (its reference values pinned to its coordinator
//! policies; mutual aTLS, so the peer appraises us too and only answers a `coordinator` role)
//! and ask for its state. Whether the answer is the state to continue from is the core's
//! decision ([`contrast_coordinator::Coordinator::recover_from_peer`]).

use std::sync::Arc;
use std::time::Duration;

use contrast_attest::AtlsClient;
use contrast_coordinator::{PeerDirectory, PeerRecovery};
use contrast_core::api::MeshRecoverResponse;
use contrast_core::manifest::ManifestDocument;
use contrast_sdk::{ClientError, CoordinatorClient, coordinator_validator};
use tokio::sync::watch;

use crate::Coordinator;

/// Why asking one peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AskError {
    /// The stored manifest yields no validator for the peer.
    #[error("the stored manifest does not describe its Coordinator: {0}")]
    Validator(#[from] contrast_sdk::DeploymentError),
    /// Talking to the peer failed (including its attestation, or its refusal of ours).
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The first attempt at startup may take this long before the startup probe passes anyway.
pub(crate) const STARTUP_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// One round: if recovery is needed, try every ready peer until one succeeds. Returns whether
/// this round recovered the state.
pub(crate) async fn recover_round(coordinator: &Coordinator) -> bool {
    let core = &coordinator.core;
    match core.needs_recovery().await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(error) => {
            tracing::warn!(%error, "peer recovery: reading the state");
            return false;
        }
    }
    let peers = core.peers().ready_peers().await;
    if peers.is_empty() {
        tracing::debug!("peer recovery: no ready peers found");
        return false;
    }
    for peer in peers {
        let ask = async |manifest: &ManifestDocument| ask_peer(coordinator, &peer, manifest).await;
        match core.recover_from_peer(ask).await {
            Ok(PeerRecovery::Recovered(state)) => {
                coordinator.metrics.set_generation(state.generation());
                tracing::info!(peer, "recovered from a peer");
                return true;
            }
            Ok(_) => return false,
            Err(error) => tracing::warn!(peer, %error, "peer recovery failed"),
        }
    }
    false
}

/// Attests `peer` against `manifest` and asks for its state.
async fn ask_peer(
    coordinator: &Coordinator,
    peer: &str,
    manifest: &ManifestDocument,
) -> Result<MeshRecoverResponse, AskError> {
    let validator = coordinator_validator(manifest.manifest())?;
    let client = CoordinatorClient::new(
        peer,
        AtlsClient::new(validator).with_issuer(Arc::clone(&coordinator.issuer)),
    );
    Ok(client.mesh_recover().await?.value)
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
