//! The mesh API's rules: a workload certificate and workload secret for an attested workload
//! whose `HOST_DATA` the manifest lists, and the state for a recovering peer Coordinator.

use std::sync::Arc;

use contrast_attest::atls::AttestedPeer;
use contrast_attest::{AtlsError, VerifiedPeer};
use contrast_ca::mesh_cert_extensions;
use contrast_core::api::MeshRecoverResponse;
use contrast_core::manifest::{PolicyEntry, Role};
use contrast_store::Store;
use zeroize::Zeroizing;

use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::state::{Phase, State};

/// What the transport's handshake established about a mesh client.
#[derive(Debug, Clone, Copy)]
pub enum MeshClient<'a> {
    /// The client's attestation was refused in the handshake; the rejection was deferred so
    /// that the client can be told why.
    Refused(&'a Arc<AtlsError>),
    /// The client presented no certificate.
    Anonymous,
    /// The client's certificate, verified and (if it carried evidence) appraised against the
    /// manifest the connection was accepted under.
    Verified(&'a VerifiedPeer),
}

impl<'a> MeshClient<'a> {
    /// From a handshake's outcome: its rejection wins over its peer.
    #[must_use]
    pub fn from_handshake(
        peer: Option<&'a VerifiedPeer>,
        rejection: Option<&'a Arc<AtlsError>>,
    ) -> Self {
        match (rejection, peer) {
            (Some(rejection), _) => Self::Refused(rejection),
            (None, Some(peer)) => Self::Verified(peer),
            (None, None) => Self::Anonymous,
        }
    }
}

/// A workload's mesh certificate and secret (upstream's `NewMeshCertResponse`).
#[derive(Debug)]
#[non_exhaustive]
pub struct MeshCertificate {
    /// The mesh CA certificate, PEM.
    pub mesh_ca_pem: String,
    /// The workload certificate followed by the intermediate, PEM.
    pub cert_chain_pem: String,
    /// The root CA certificate, PEM.
    pub root_ca_pem: String,
    /// The workload secret for the policy's `WorkloadSecretID`; empty when it has none.
    pub workload_secret: Zeroizing<Vec<u8>>,
    /// The certificate's common name (its first DNS SAN), for logs.
    pub common_name: String,
    /// The client's attested `HOST_DATA`.
    pub host_data: [u8; 32],
}

/// The appraised client, its TLS key (SPKI DER) and its policy entry.
struct Admitted<'c> {
    attested: &'c AttestedPeer,
    spki_der: &'c [u8],
    entry: &'c PolicyEntry,
}

/// The appraised client and its policy entry in `state`'s manifest, or why not.
fn admit<'c>(state: &'c State, client: MeshClient<'c>) -> Result<Admitted<'c>, Error> {
    let peer = match client {
        MeshClient::Refused(rejection) => {
            return Err(Error::AttestationRefused(Arc::clone(rejection)));
        }
        MeshClient::Anonymous => return Err(Error::NoClientCertificate),
        MeshClient::Verified(peer) => peer,
    };
    let attested = peer.attestation.as_ref().ok_or(Error::NoAttestation)?;
    let entry = state
        .manifest()
        .manifest()
        .policy_for_host_data(&attested.host_data)
        .ok_or(Error::UnknownHostData {
            host_data: attested.host_data,
        })?;
    Ok(Admitted {
        attested,
        spki_der: &peer.spki_der,
        entry,
    })
}

impl<S: Store, P> Coordinator<S, P> {
    /// The refusal for every call on a mesh connection accepted while no state was active, so
    /// that the workload can log what it waits for: [`Error::NoManifest`] before the first
    /// manifest, [`Error::NeedsRecovery`] in recovery (or stale), [`Error::Tampered`], and
    /// [`Error::ConnectionOutdated`] for a state that became active since (reconnect to be
    /// appraised under it).
    pub async fn mesh_refusal_without_state(&self) -> Error {
        match self.phase().await {
            Ok(Phase::Uninitialized) => Error::NoManifest,
            Ok(Phase::NeedsRecovery | Phase::Stale(_)) => Error::NeedsRecovery,
            Ok(Phase::Tampered(_, tampering)) => Error::Tampered(tampering),
            Ok(Phase::Active(state)) => Error::ConnectionOutdated {
                accepted: 0,
                current: Some(state.generation()),
            },
            Err(error) => error,
        }
    }

    /// Whether `accepted` (the state a mesh connection was accepted under) is still the state
    /// in force, and serving.
    pub(crate) fn still_in_force(&self, accepted: &State) -> Result<(), Error> {
        let current = self.guard.current();
        if !current
            .as_ref()
            .is_some_and(|now| std::ptr::eq(Arc::as_ptr(now), accepted))
        {
            return Err(Error::ConnectionOutdated {
                accepted: accepted.generation(),
                current: current.map(|now| now.generation()),
            });
        }
        if let Some(tampering) = accepted.tampering() {
            return Err(Error::Tampered(tampering));
        }
        if accepted.is_stale() {
            return Err(Error::NeedsRecovery);
        }
        Ok(())
    }

    /// Issues a mesh certificate to `client` under `state` (the state its connection was
    /// accepted under; upstream's `NewMeshCert`): the client must be appraised and its
    /// `HOST_DATA` a `Policies` key; the certificate carries the policy's SANs, the report's
    /// claims and the workload-secret ID, for the client's TLS key.
    ///
    /// Every request is decided under the state in force at that moment: if another manifest
    /// was set since the connection was accepted, or the state went stale or found tampering,
    /// the request is refused (the client reconnects and is appraised under the new manifest).
    ///
    /// # Errors
    /// [`Error::ConnectionOutdated`], [`Error::NeedsRecovery`], [`Error::Tampered`],
    /// [`Error::AttestationRefused`], [`Error::NoClientCertificate`], [`Error::NoAttestation`],
    /// [`Error::UnknownHostData`], [`Error::Certificate`], [`Error::Internal`].
    pub fn mesh_certificate(
        &self,
        state: &State,
        client: MeshClient<'_>,
    ) -> Result<MeshCertificate, Error> {
        self.still_in_force(state)?;
        let Admitted {
            attested,
            spki_der,
            entry,
        } = admit(state, client)?;
        let report = attested
            .report()
            .map_err(|e| Error::internal("reading the verified report", e))?;
        let extensions = mesh_cert_extensions(&report, &entry.workload_secret_id)
            .map_err(|e| Error::internal("building the certificate claims", e))?;
        let sans = entry.sans.clone().unwrap_or_default();
        let leaf = state
            .ca()
            .issue_mesh_cert(
                spki_der,
                &sans,
                &extensions,
                self.guard.clock().now(),
                &mut self.guard.rng(),
            )
            .map_err(Error::Certificate)?;
        let workload_secret = if entry.workload_secret_id.is_empty() {
            Zeroizing::new(Vec::new())
        } else {
            let secret = state
                .seed_engine()
                .workload_secret(&entry.workload_secret_id)
                .map_err(|e| Error::internal("deriving the workload secret", e))?;
            Zeroizing::new(secret.as_bytes().to_vec())
        };
        Ok(MeshCertificate {
            mesh_ca_pem: leaf.mesh_ca_pem,
            cert_chain_pem: leaf.cert_chain_pem,
            root_ca_pem: leaf.root_ca_pem,
            workload_secret,
            common_name: sans.first().cloned().unwrap_or_default(),
            host_data: attested.host_data,
        })
    }

    /// The state for a recovering peer Coordinator (upstream's mesh `Recover`): seed, salt,
    /// mesh CA key and the manifest in force, for a client admitted as for a mesh certificate
    /// whose policy has the `coordinator` role.
    ///
    /// # Errors
    /// As [`Coordinator::mesh_certificate`]'s admission, [`Error::RoleNotAllowed`],
    /// [`Error::Internal`].
    pub fn peer_recovery_answer(
        &self,
        state: &State,
        client: MeshClient<'_>,
    ) -> Result<MeshRecoverResponse, Error> {
        self.still_in_force(state)?;
        let Admitted { entry, .. } = admit(state, client)?;
        if entry.role != Role::Coordinator {
            return Err(Error::RoleNotAllowed {
                role: entry.role.as_str().to_owned(),
            });
        }
        let mesh_ca_key = state
            .ca()
            .mesh_key()
            .to_sec1_pem()
            .map_err(|e| Error::internal("encoding the mesh CA key", e))?;
        Ok(MeshRecoverResponse {
            seed: Zeroizing::new(state.seed_engine().seed().to_vec()),
            salt: state.seed_engine().salt().to_vec(),
            mesh_ca_key: Zeroizing::new(mesh_ca_key.as_bytes().to_vec()),
            latest_manifest: state.manifest().raw().to_vec(),
        })
    }
}
