//! The data owner's checks: how to attest the Coordinator of a manifest, and what a
//! `GetManifests` response must satisfy. Pure functions, no network.

use std::collections::BTreeSet;

use contrast_core::api::GetManifestsResponse;
use contrast_core::coordinator_identity::{CoordinatorIdentity, IdentityError};
use contrast_core::history::{HASH_SIZE, Hash, Transition, rebuild_chain};
use contrast_core::manifest::{Manifest, ManifestDocument};
use der::DecodePem;

use contrast_attest::AppraisalPolicy;
use contrast_attest::CrlPolicy;
use contrast_attest::{AtlsValidator, Verifier};

/// Why a manifest cannot attest its Coordinator, or a `GetManifests` response is not a
/// consistent deployment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentError {
    /// The manifest does not name a Coordinator that can be attested: no SEV-SNP reference
    /// values, no policy with role `coordinator`, or a coordinator policy key that is not a
    /// hash.
    #[error("the coordinator cannot be attested: {source}")]
    CoordinatorIdentity {
        /// What is missing or wrong.
        #[from]
        source: IdentityError,
    },
    /// The history is empty.
    #[error("the coordinator returned an empty manifest history")]
    EmptyHistory,
    /// A manifest of the history does not parse.
    #[error("manifest {index} of the history (0 = oldest) does not parse: {reason}")]
    InvalidManifest {
        /// Position in the history, 0 = oldest.
        index: usize,
        /// The decoder's message.
        reason: String,
    },
    /// The claimed head is not 32 bytes.
    #[error("the latest transition hash is {found} bytes, expected {HASH_SIZE}")]
    MalformedHead {
        /// Its length.
        found: usize,
    },
    /// The transition chain rebuilt from the manifests does not end in the claimed head: the
    /// history was changed, truncated or reordered.
    #[error(
        "the manifest history does not match its head: rebuilt transition {}, the coordinator claims {}",
        hex::encode(.rebuilt),
        hex::encode(.claimed)
    )]
    HeadMismatch {
        /// The last transition hash rebuilt from the manifests.
        rebuilt: Hash,
        /// The head the Coordinator claims.
        claimed: Hash,
    },
    /// The newest manifest references a policy the response does not carry.
    #[error("policy {hash} referenced by the newest manifest is missing from the response")]
    MissingPolicy {
        /// The `Policies` key (hex SHA-256 of the initdata document).
        hash: String,
    },
    /// The root or mesh CA is not a PEM certificate.
    #[error("the {what} is not a pem certificate: {reason}")]
    InvalidCertificate {
        /// `"root ca"` or `"mesh ca"`.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The history does not contain a head seen earlier: it was rolled back or forked.
    #[error(
        "the manifest history does not extend the transition {} seen earlier (current head {}): the history was rolled back or forked",
        hex::encode(.previous),
        hex::encode(.head)
    )]
    NotExtending {
        /// The head seen earlier.
        previous: Hash,
        /// The current head.
        head: Hash,
    },
    /// The newest manifest is not the one the caller expects.
    #[error(
        "the coordinator runs manifest {}, not the expected {}",
        hex::encode(.found),
        hex::encode(.expected)
    )]
    UnexpectedManifest {
        /// SHA-256 of the expected manifest.
        expected: Hash,
        /// SHA-256 of the newest manifest of the history.
        found: Hash,
    },
    /// A `/attest` response is not upstream's JSON.
    #[error("the /attest response is malformed: {reason}")]
    MalformedAttestResponse {
        /// The decoder's message.
        reason: String,
    },
    /// The evidence of a `/attest` response was refused (the check, expected and found).
    #[error("the coordinator's evidence was refused: {reason}")]
    Evidence {
        /// The failed check.
        reason: String,
    },
}

/// The validator for attesting the Coordinator of `manifest`: [`identity_validator`] of the
/// manifest's [`CoordinatorIdentity`] (its SEV-SNP reference values, HOST_DATA one of its
/// coordinator policy hashes).
///
/// # Errors
/// [`DeploymentError::CoordinatorIdentity`]: the manifest has no SEV-SNP reference values, no
/// coordinator policy, or a coordinator policy key that is not a hash.
pub fn coordinator_validator(manifest: &Manifest) -> Result<AtlsValidator, DeploymentError> {
    Ok(identity_validator(&CoordinatorIdentity::from_manifest(
        manifest,
    )?))
}

/// The validator that accepts only the Coordinator `identity` describes: its SEV-SNP reference
/// values, HOST_DATA restricted to its policy hashes
/// ([`AppraisalPolicy::expected_host_data`]), and the strict default policy otherwise: the
/// attestation document must carry a fresh, ARK-signed CRL ([`CrlPolicy::Required`]; the
/// Coordinator sends the one it fetched from the KDS, the simulated platform its own). For a
/// Coordinator that cannot send one, see [`identity_validator_with_crl`].
///
/// The one rule for attesting a Coordinator: a data owner gets the identity from the manifest
/// it expects ([`coordinator_validator`]), a workload's initializer from its pod's environment
/// (`contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV`).
#[must_use]
pub fn identity_validator(identity: &CoordinatorIdentity) -> AtlsValidator {
    identity_validator_with_crl(identity, CrlPolicy::Required)
}

/// [`identity_validator`] with another CRL policy: [`CrlPolicy::BestEffort`] accepts a
/// document without a CRL (whoever controls the Coordinator's host then decides whether a
/// revoked certificate is noticed); a CRL that is present is still checked.
#[must_use]
pub fn identity_validator_with_crl(
    identity: &CoordinatorIdentity,
    crl: CrlPolicy,
) -> AtlsValidator {
    AtlsValidator::new(Verifier::new(
        identity.snp_reference_values(),
        AppraisalPolicy::default()
            .with_crl(crl)
            .with_expected_host_data(Some(identity.policy_hashes().to_vec())),
    ))
}

/// A `GetManifests` response that passed [`verify_deployment`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDeployment {
    /// The transition hashes rebuilt from the manifests, oldest first.
    pub transition_hashes: Vec<Hash>,
    /// The head (the last of `transition_hashes`, equal to the Coordinator's claim).
    pub latest_transition_hash: Hash,
    /// The parsed manifests, oldest first.
    pub manifests: Vec<ManifestDocument>,
}

impl VerifiedDeployment {
    /// The newest manifest (the one in force).
    #[must_use]
    pub fn latest_manifest(&self) -> Option<&ManifestDocument> {
        self.manifests.last()
    }

    /// Whether this history extends `previous` (a head seen earlier): `previous` must be one of
    /// its transition hashes.
    ///
    /// # Errors
    /// [`DeploymentError::NotExtending`]: the history was rolled back or forked.
    pub fn check_extends(&self, previous: &Hash) -> Result<(), DeploymentError> {
        if self.transition_hashes.contains(previous) {
            Ok(())
        } else {
            Err(DeploymentError::NotExtending {
                previous: *previous,
                head: self.latest_transition_hash,
            })
        }
    }

    /// Whether the newest manifest is `expected` (byte for byte, by hash).
    ///
    /// # Errors
    /// [`DeploymentError::UnexpectedManifest`]; [`DeploymentError::EmptyHistory`] (never for a
    /// verified history).
    pub fn check_latest_is(&self, expected: &ManifestDocument) -> Result<(), DeploymentError> {
        let found = self
            .latest_manifest()
            .ok_or(DeploymentError::EmptyHistory)?
            .hash();
        if found == expected.hash() {
            Ok(())
        } else {
            Err(DeploymentError::UnexpectedManifest {
                expected: expected.hash(),
                found,
            })
        }
    }
}

/// Checks a `GetManifests` response: at least one manifest, every manifest parses, the
/// transition chain rebuilt from the manifests ends in `latest_transition.transition_hash`,
/// every policy the newest manifest references is present (by SHA-256) in `policies`, and the
/// root and mesh CA are PEM certificates. The head's signature is not checked (its key is
/// seed-derived; see the module docs).
///
/// # Errors
/// The first failed check as a [`DeploymentError`].
pub fn verify_deployment(
    response: &GetManifestsResponse,
) -> Result<VerifiedDeployment, DeploymentError> {
    let claimed: Hash = response
        .latest_transition
        .transition_hash
        .as_slice()
        .try_into()
        .map_err(|_| DeploymentError::MalformedHead {
            found: response.latest_transition.transition_hash.len(),
        })?;
    let deployment = check_history(
        &response.manifests,
        &response.policies,
        &response.root_ca,
        &response.mesh_ca,
    )?;
    if deployment.latest_transition_hash != claimed {
        return Err(DeploymentError::HeadMismatch {
            rebuilt: deployment.latest_transition_hash,
            claimed,
        });
    }
    Ok(deployment)
}

/// The checks of a served history that do not depend on how it is bound to the Coordinator
/// (a signed head over aTLS, or `/attest`'s report data): at least one manifest, every manifest
/// parses, every policy the newest manifest references is present (by SHA-256), and the root
/// and mesh CA are PEM certificates. Returns the rebuilt transition chain.
pub(crate) fn check_history(
    raw_manifests: &[Vec<u8>],
    policies: &[Vec<u8>],
    root_ca: &[u8],
    mesh_ca: &[u8],
) -> Result<VerifiedDeployment, DeploymentError> {
    if raw_manifests.is_empty() {
        return Err(DeploymentError::EmptyHistory);
    }
    let manifests = raw_manifests
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            ManifestDocument::parse(raw.clone()).map_err(|e| DeploymentError::InvalidManifest {
                index,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let transition_hashes: Vec<Hash> = rebuild_chain(raw_manifests)
        .iter()
        .map(Transition::hash)
        .collect();
    let latest_transition_hash = transition_hashes
        .last()
        .copied()
        .ok_or(DeploymentError::EmptyHistory)?;
    let present: BTreeSet<String> = policies
        .iter()
        .map(|policy| hex::encode(contrast_core::sha256(policy)))
        .collect();
    if let Some(latest) = manifests.last() {
        for hash in latest.manifest().policies.keys() {
            if !present.contains(hash) {
                return Err(DeploymentError::MissingPolicy { hash: hash.clone() });
            }
        }
    }
    check_pem_certificate("root ca", root_ca)?;
    check_pem_certificate("mesh ca", mesh_ca)?;
    Ok(VerifiedDeployment {
        transition_hashes,
        latest_transition_hash,
        manifests,
    })
}

fn check_pem_certificate(what: &'static str, pem: &[u8]) -> Result<(), DeploymentError> {
    x509_cert::Certificate::from_pem(pem)
        .map(|_| ())
        .map_err(|e| DeploymentError::InvalidCertificate {
            what,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use contrast_core::api::ApiLatestTransition;
    use contrast_core::history::latest_transition_hash;

    use super::*;
    use contrast_attest::atls::{AtlsCertificate, AtlsKey};

    fn pem_certificate() -> Vec<u8> {
        let key = AtlsKey::generate_p256().unwrap();
        let der = AtlsCertificate::build(
            &key,
            None,
            Duration::from_secs(1_800_000_000),
            &mut rand_core::OsRng,
        )
        .unwrap();
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der)
            .unwrap()
            .into_bytes()
    }

    fn manifest(policies: &[&[u8]], generation: u32) -> Vec<u8> {
        let entries: Vec<String> = policies
            .iter()
            .map(|p| {
                format!(
                    r#""{}":{{"SANs":["svc-{generation}"],"WorkloadSecretID":"w"}}"#,
                    hex::encode(contrast_core::sha256(p))
                )
            })
            .collect();
        format!(
            r#"{{"Policies":{{{}}},"ReferenceValues":{{}},"WorkloadOwnerPubKeys":null,"SeedshareOwnerPubKeys":null}}"#,
            entries.join(",")
        )
        .into_bytes()
    }

    fn response(manifests: Vec<Vec<u8>>, policies: Vec<Vec<u8>>) -> GetManifestsResponse {
        let head = latest_transition_hash(&manifests);
        GetManifestsResponse {
            version: String::new(),
            manifests,
            policies,
            root_ca: pem_certificate(),
            mesh_ca: pem_certificate(),
            latest_transition: ApiLatestTransition {
                transition_hash: head.to_vec(),
                signature: vec![0x30, 0x00],
            },
        }
    }

    fn history() -> GetManifestsResponse {
        let policies = vec![b"policy a".to_vec(), b"policy b".to_vec()];
        response(
            vec![
                manifest(&[b"policy a"], 1),
                manifest(&[b"policy a", b"policy b"], 2),
                manifest(&[b"policy b"], 3),
            ],
            policies,
        )
    }

    #[test]
    fn a_consistent_history_verifies() {
        let resp = history();
        let deployment = verify_deployment(&resp).unwrap();
        assert_eq!(deployment.transition_hashes.len(), 3);
        assert_eq!(
            deployment.latest_transition_hash.to_vec(),
            resp.latest_transition.transition_hash
        );
        assert_eq!(
            deployment.latest_manifest().unwrap().raw(),
            resp.manifests[2].as_slice()
        );
        let first = rebuild_chain(&resp.manifests[..1])[0].hash();
        assert_eq!(deployment.transition_hashes[0], first);
    }

    #[test]
    fn a_changed_manifest_breaks_the_head() {
        let mut resp = history();
        let claimed = resp.latest_transition.transition_hash.clone();
        resp.manifests[1] = manifest(&[b"policy b"], 9);
        match verify_deployment(&resp) {
            Err(DeploymentError::HeadMismatch {
                rebuilt,
                claimed: found,
            }) => {
                assert_eq!(found.to_vec(), claimed);
                assert_eq!(rebuilt, latest_transition_hash(&resp.manifests));
            }
            other => panic!("expected HeadMismatch, got {other:?}"),
        }
    }

    #[test]
    fn a_truncated_history_breaks_the_head() {
        let mut resp = history();
        // Dropping the oldest manifest changes every later transition hash.
        resp.manifests.remove(0);
        assert!(matches!(
            verify_deployment(&resp),
            Err(DeploymentError::HeadMismatch { .. })
        ));
        resp.manifests.clear();
        assert_eq!(verify_deployment(&resp), Err(DeploymentError::EmptyHistory));
    }

    #[test]
    fn a_missing_policy_is_named() {
        let mut resp = history();
        resp.policies.retain(|p| p.as_slice() != b"policy b");
        assert_eq!(
            verify_deployment(&resp),
            Err(DeploymentError::MissingPolicy {
                hash: hex::encode(contrast_core::sha256(b"policy b"))
            })
        );
    }

    #[test]
    fn an_unparsable_manifest_and_bad_certificates_are_named() {
        let mut resp = history();
        resp.manifests[0] = b"not json".to_vec();
        resp.latest_transition.transition_hash = latest_transition_hash(&resp.manifests).to_vec();
        assert!(matches!(
            verify_deployment(&resp),
            Err(DeploymentError::InvalidManifest { index: 0, .. })
        ));
        let mut resp = history();
        resp.mesh_ca = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec();
        assert!(matches!(
            verify_deployment(&resp),
            Err(DeploymentError::InvalidCertificate {
                what: "mesh ca",
                ..
            })
        ));
        let mut resp = history();
        resp.latest_transition.transition_hash.pop();
        assert_eq!(
            verify_deployment(&resp),
            Err(DeploymentError::MalformedHead { found: 31 })
        );
    }

    #[test]
    fn check_extends_accepts_earlier_heads_and_refuses_rollback() {
        let resp = history();
        let deployment = verify_deployment(&resp).unwrap();
        let older_head = latest_transition_hash(&resp.manifests[..2]);
        deployment.check_extends(&older_head).unwrap();
        deployment
            .check_extends(&deployment.latest_transition_hash)
            .unwrap();

        // The Coordinator rolls back to two manifests: the head seen before is not in it.
        let rolled_back = verify_deployment(&response(
            resp.manifests[..2].to_vec(),
            resp.policies.clone(),
        ))
        .unwrap();
        assert_eq!(
            rolled_back.check_extends(&deployment.latest_transition_hash),
            Err(DeploymentError::NotExtending {
                previous: deployment.latest_transition_hash,
                head: older_head,
            })
        );
    }

    #[test]
    fn coordinator_validator_pins_coordinator_host_data() {
        let coordinator = [0xab_u8; 32];
        let json = format!(
            r#"{{"Policies":{{"{}":{{"SANs":null,"Role":"coordinator"}},"{}":{{"SANs":null}}}},"ReferenceValues":{{"snp":[{{"Platform":"Metal-QEMU-SNP","ProductName":"Milan","TrustedMeasurement":"{}","MinimumTCB":{{}},"GuestPolicy":{{}},"PlatformInfo":{{}}}}]}}}}"#,
            hex::encode(coordinator),
            hex::encode([0xcd_u8; 32]),
            "00".repeat(48)
        );
        let document = ManifestDocument::parse(json.into_bytes()).unwrap();
        let validator = coordinator_validator(document.manifest()).unwrap();
        let verifier = validator.verifier();
        assert_eq!(
            verifier.policy().expected_host_data,
            Some(vec![coordinator])
        );
        assert_eq!(verifier.references().count(), 1);
        assert_eq!(verifier.policy().crl, CrlPolicy::Required);
        assert!(!verifier.policy().allow_debug);

        let mut no_coordinator = document.manifest().clone();
        no_coordinator
            .policies
            .retain(|key, _| key != &hex::encode(coordinator));
        assert!(matches!(
            coordinator_validator(&no_coordinator),
            Err(DeploymentError::CoordinatorIdentity {
                source: IdentityError::NoPolicyHash
            })
        ));
        let mut no_values = document.manifest().clone();
        no_values.reference_values.snp.clear();
        assert!(matches!(
            coordinator_validator(&no_values),
            Err(DeploymentError::CoordinatorIdentity {
                source: IdentityError::NoReferenceValues
            })
        ));
    }
}
