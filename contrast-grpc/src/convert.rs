//! Conversions between the Coordinator's typed requests and responses
//! ([`contrast_core::api`]) and the protobuf messages on the wire.
//!
//! Secrets (seed, mesh CA key, workload secret) are moved, not copied, between the two; both
//! sides wipe them on drop (the core's types hold them in `Zeroizing`, the prost messages have a
//! wiping `Drop`, `secret.rs`). Fields of a message with `Drop` are taken, not moved out.

use contrast_core::api;
use zeroize::Zeroizing;

use crate::{meshapi, userapi};

/// An empty bytes field is "not set" (proto3 has no presence for `bytes`).
fn optional(bytes: Vec<u8>) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then_some(bytes)
}

fn take(secret: &mut Zeroizing<Vec<u8>>) -> Vec<u8> {
    std::mem::take(&mut **secret)
}

impl From<api::SetManifestRequest> for userapi::SetManifestRequest {
    fn from(request: api::SetManifestRequest) -> Self {
        Self {
            manifest: request.manifest,
            policies: request.policies,
            previous_transition_hash: request.previous_transition_hash.unwrap_or_default(),
            signature: request.signature.unwrap_or_default(),
        }
    }
}

impl From<userapi::SetManifestRequest> for api::SetManifestRequest {
    fn from(request: userapi::SetManifestRequest) -> Self {
        Self {
            manifest: request.manifest,
            policies: request.policies,
            previous_transition_hash: optional(request.previous_transition_hash),
            signature: optional(request.signature),
        }
    }
}

impl From<api::SeedSharesDoc> for userapi::SeedShareDocument {
    fn from(doc: api::SeedSharesDoc) -> Self {
        Self {
            seed_shares: doc
                .seed_shares
                .into_iter()
                .map(|share| userapi::SeedShare {
                    public_key: share.public_key,
                    encrypted_seed: share.encrypted_seed,
                })
                .collect(),
            salt: doc.salt,
        }
    }
}

impl From<userapi::SeedShareDocument> for api::SeedSharesDoc {
    fn from(doc: userapi::SeedShareDocument) -> Self {
        Self {
            seed_shares: doc
                .seed_shares
                .into_iter()
                .map(|share| api::ApiSeedShare {
                    public_key: share.public_key,
                    encrypted_seed: share.encrypted_seed,
                })
                .collect(),
            salt: doc.salt,
        }
    }
}

impl From<api::SetManifestResponse> for userapi::SetManifestResponse {
    fn from(response: api::SetManifestResponse) -> Self {
        Self {
            root_ca: response.root_ca,
            mesh_ca: response.mesh_ca,
            seed_shares_doc: response.seed_shares_doc.map(Into::into),
        }
    }
}

impl From<userapi::SetManifestResponse> for api::SetManifestResponse {
    fn from(response: userapi::SetManifestResponse) -> Self {
        Self {
            version: String::new(),
            root_ca: response.root_ca,
            mesh_ca: response.mesh_ca,
            seed_shares_doc: response.seed_shares_doc.map(Into::into),
        }
    }
}

impl From<api::GetManifestsResponse> for userapi::GetManifestsResponse {
    fn from(response: api::GetManifestsResponse) -> Self {
        Self {
            manifests: response.manifests,
            policies: response.policies,
            root_ca: response.root_ca,
            mesh_ca: response.mesh_ca,
            latest_transition: Some(userapi::LatestTransition {
                transition_hash: response.latest_transition.transition_hash,
                signature: response.latest_transition.signature,
            }),
        }
    }
}

impl From<userapi::GetManifestsResponse> for api::GetManifestsResponse {
    /// A response without `LatestTransition` gets an empty one, which
    /// `contrast_sdk::verify_deployment` refuses.
    fn from(response: userapi::GetManifestsResponse) -> Self {
        let latest = response.latest_transition.unwrap_or_default();
        Self {
            version: String::new(),
            manifests: response.manifests,
            policies: response.policies,
            root_ca: response.root_ca,
            mesh_ca: response.mesh_ca,
            latest_transition: api::ApiLatestTransition {
                transition_hash: latest.transition_hash,
                signature: latest.signature,
            },
        }
    }
}

impl From<api::RecoverRequest> for userapi::RecoverRequest {
    fn from(mut request: api::RecoverRequest) -> Self {
        Self {
            seed: take(&mut request.seed),
            salt: request.salt,
            force: request.force,
            history_contains: request.history_contains.unwrap_or_default(),
        }
    }
}

impl From<userapi::RecoverRequest> for api::RecoverRequest {
    fn from(mut request: userapi::RecoverRequest) -> Self {
        Self {
            seed: Zeroizing::new(std::mem::take(&mut request.seed)),
            salt: std::mem::take(&mut request.salt),
            force: request.force,
            // proto3 bytes: empty means absent.
            history_contains: Some(std::mem::take(&mut request.history_contains))
                .filter(|hash| !hash.is_empty()),
        }
    }
}

impl From<api::RecoverResponse> for userapi::RecoverResponse {
    fn from(response: api::RecoverResponse) -> Self {
        Self {
            latest_transition_hash: response.latest_transition_hash,
            generation: response.generation,
        }
    }
}

impl From<userapi::RecoverResponse> for api::RecoverResponse {
    fn from(response: userapi::RecoverResponse) -> Self {
        Self {
            latest_transition_hash: response.latest_transition_hash,
            generation: response.generation,
        }
    }
}

impl From<api::MeshCertResponse> for meshapi::NewMeshCertResponse {
    fn from(mut response: api::MeshCertResponse) -> Self {
        Self {
            workload_secret: take(&mut response.workload_secret),
            mesh_ca_cert: response.mesh_ca_cert,
            cert_chain: response.cert_chain,
            root_ca_cert: response.root_ca_cert,
        }
    }
}

impl From<meshapi::NewMeshCertResponse> for api::MeshCertResponse {
    fn from(mut response: meshapi::NewMeshCertResponse) -> Self {
        Self {
            mesh_ca_cert: std::mem::take(&mut response.mesh_ca_cert),
            cert_chain: std::mem::take(&mut response.cert_chain),
            root_ca_cert: std::mem::take(&mut response.root_ca_cert),
            workload_secret: Zeroizing::new(std::mem::take(&mut response.workload_secret)),
        }
    }
}

impl From<api::MeshRecoverResponse> for meshapi::RecoverResponse {
    fn from(mut response: api::MeshRecoverResponse) -> Self {
        Self {
            seed: take(&mut response.seed),
            salt: response.salt,
            mesh_ca_key: take(&mut response.mesh_ca_key),
            latest_manifest: response.latest_manifest,
        }
    }
}

impl From<meshapi::RecoverResponse> for api::MeshRecoverResponse {
    fn from(mut response: meshapi::RecoverResponse) -> Self {
        Self {
            seed: Zeroizing::new(std::mem::take(&mut response.seed)),
            salt: std::mem::take(&mut response.salt),
            mesh_ca_key: Zeroizing::new(std::mem::take(&mut response.mesh_ca_key)),
            latest_manifest: std::mem::take(&mut response.latest_manifest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_manifest_request_round_trips_and_empty_means_unset() {
        let request = api::SetManifestRequest {
            manifest: b"{}".to_vec(),
            policies: vec![b"a".to_vec()],
            previous_transition_hash: Some(vec![1; 32]),
            signature: None,
        };
        let wire = userapi::SetManifestRequest::from(request.clone());
        assert!(wire.signature.is_empty());
        assert_eq!(api::SetManifestRequest::from(wire), request);
    }

    #[test]
    fn recover_response_moves_the_secrets() {
        let response = api::MeshRecoverResponse {
            seed: Zeroizing::new(vec![7; 64]),
            salt: vec![1; 32],
            mesh_ca_key: Zeroizing::new(b"key".to_vec()),
            latest_manifest: b"{}".to_vec(),
        };
        let wire = meshapi::RecoverResponse::from(response.clone());
        assert_eq!(wire.seed, vec![7; 64]);
        assert_eq!(api::MeshRecoverResponse::from(wire), response);
    }
}
