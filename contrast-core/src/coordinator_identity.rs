//! The Coordinator's identity as a workload's initializer expects it: the HOST_DATA values (the
//! manifest's coordinator policy hashes) a Coordinator may attest with, and the SEV-SNP
//! reference values its VM must match.
//!
//! `contrast generate` writes it, as one compact JSON document, into the environment of the
//! initializer container it injects ([`COORDINATOR_IDENTITY_ENV`]); the pod's agent policy pins
//! that environment and the initdata digest (the pod's HOST_DATA) binds the policy, so a pod
//! whose identity was changed is a different workload to the Coordinator. The initializer
//! parses it with [`CoordinatorIdentity::from_json`] and attests the Coordinator with it before
//! trusting anything the Coordinator returns.
//!
//! The document, in this field order (unknown fields are refused):
//!
//! ```json
//! {"PolicyHashes":["<64 hex digits>", …],"SnpReferenceValues":[<manifest `snp` entry>, …]}
//! ```
//!
//! `SnpReferenceValues` entries are decoded exactly as the manifest's `ReferenceValues.snp`
//! ([`crate::manifest::decode_snp_reference_values`]).
//!
//! [`COORDINATOR_IDENTITY_ENV`]: crate::kubernetes::COORDINATOR_IDENTITY_ENV

use serde_json::value::RawValue;

use crate::hexstring::{self, HexError};
use crate::manifest::{self, Manifest, ManifestError, SnpReferenceValues};

/// Largest accepted identity document, in bytes. A few reference value entries and policy
/// hashes take a few KiB; the bound keeps a bad environment variable from costing memory.
pub const MAX_IDENTITY_SIZE: usize = 256 * 1024;

/// Why a Coordinator identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The document is larger than [`MAX_IDENTITY_SIZE`].
    #[error("the coordinator identity is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not JSON of the expected shape (a missing or unknown field, a wrong
    /// type); the message names the field.
    #[error(
        "the coordinator identity is not a JSON object {{\"PolicyHashes\": [...], \"SnpReferenceValues\": [...]}}: {message}"
    )]
    Syntax {
        /// What the JSON parser reported (field, line and column).
        message: String,
    },
    /// `PolicyHashes` is empty: no Coordinator could be accepted.
    #[error(
        "the coordinator identity has no policy hash (PolicyHashes is empty; a manifest gives \
         them as its Policies with role \"coordinator\")"
    )]
    NoPolicyHash,
    /// A policy hash is not 32 bytes of hex.
    #[error("PolicyHashes[{index}] {found:?} is not a 32-byte hex hash: {source}")]
    InvalidPolicyHash {
        /// Its position in `PolicyHashes`.
        index: usize,
        /// The value found.
        found: String,
        /// What is wrong with it.
        source: HexError,
    },
    /// `SnpReferenceValues` is empty: the Coordinator's VM could not be appraised.
    #[error(
        "the coordinator identity has no sev-snp reference values (SnpReferenceValues is empty; a \
         manifest gives them as ReferenceValues.snp)"
    )]
    NoReferenceValues,
    /// An `SnpReferenceValues` entry does not decode.
    #[error("SnpReferenceValues: {source}")]
    ReferenceValues {
        /// The decoder's error, with the path of the entry and field.
        source: ManifestError,
    },
}

/// What a workload expects of its Coordinator: HOST_DATA one of [`policy_hashes`] and a VM
/// matching one of [`snp_reference_values`]. Never empty in either (the constructors refuse).
///
/// [`policy_hashes`]: Self::policy_hashes
/// [`snp_reference_values`]: Self::snp_reference_values
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorIdentity {
    policy_hashes: Vec<[u8; 32]>,
    snp_reference_values: Vec<SnpReferenceValues>,
}

/// The document as written: hashes as hex, entries as the manifest writes them.
#[derive(serde::Serialize)]
struct WireOut<'a> {
    #[serde(rename = "PolicyHashes")]
    policy_hashes: Vec<String>,
    #[serde(rename = "SnpReferenceValues")]
    snp_reference_values: &'a [SnpReferenceValues],
}

/// The document as read: the entries kept raw for the manifest's decoder.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    #[serde(rename = "PolicyHashes")]
    policy_hashes: Vec<String>,
    #[serde(rename = "SnpReferenceValues")]
    snp_reference_values: Box<RawValue>,
}

impl CoordinatorIdentity {
    /// An identity of the given HOST_DATA values and reference values.
    ///
    /// # Errors
    /// [`IdentityError::NoPolicyHash`], [`IdentityError::NoReferenceValues`].
    pub fn new(
        policy_hashes: Vec<[u8; 32]>,
        snp_reference_values: Vec<SnpReferenceValues>,
    ) -> Result<Self, IdentityError> {
        if policy_hashes.is_empty() {
            return Err(IdentityError::NoPolicyHash);
        }
        if snp_reference_values.is_empty() {
            return Err(IdentityError::NoReferenceValues);
        }
        Ok(Self {
            policy_hashes,
            snp_reference_values,
        })
    }

    /// The identity of the Coordinator a manifest names: its coordinator policy hashes
    /// ([`Manifest::coordinator_policy_hashes`]) and its SEV-SNP reference values.
    ///
    /// # Errors
    /// [`IdentityError::InvalidPolicyHash`] (the index counts the coordinator policies),
    /// [`IdentityError::NoPolicyHash`], [`IdentityError::NoReferenceValues`].
    pub fn from_manifest(manifest: &Manifest) -> Result<Self, IdentityError> {
        if manifest.reference_values.snp.is_empty() {
            return Err(IdentityError::NoReferenceValues);
        }
        let hashes = decode_hashes(manifest.coordinator_policy_hashes())?;
        Self::new(hashes, manifest.reference_values.snp.clone())
    }

    /// Parses the document (see the [module docs](self)).
    ///
    /// # Errors
    /// [`IdentityError::TooLarge`], [`IdentityError::Syntax`],
    /// [`IdentityError::InvalidPolicyHash`], [`IdentityError::ReferenceValues`],
    /// [`IdentityError::NoPolicyHash`], [`IdentityError::NoReferenceValues`].
    pub fn from_json(text: &str) -> Result<Self, IdentityError> {
        if text.len() > MAX_IDENTITY_SIZE {
            return Err(IdentityError::TooLarge {
                size: text.len(),
                max: MAX_IDENTITY_SIZE,
            });
        }
        let wire: WireIn = serde_json::from_str(text).map_err(|e| IdentityError::Syntax {
            message: e.to_string(),
        })?;
        let hashes = decode_hashes(wire.policy_hashes.iter().map(String::as_str))?;
        let values =
            manifest::decode_snp_reference_values(wire.snp_reference_values.get().as_bytes())
                .map_err(|source| IdentityError::ReferenceValues { source })?;
        Self::new(hashes, values)
    }

    /// The document (see the [module docs](self)): compact JSON, the same bytes for the same
    /// identity, so a re-run of `contrast generate` changes nothing.
    #[must_use]
    pub fn to_json(&self) -> String {
        let wire = WireOut {
            policy_hashes: self.policy_hashes.iter().map(hexstring::encode).collect(),
            snp_reference_values: &self.snp_reference_values,
        };
        // Serialising strings, integers and options to a String cannot fail; if serde_json
        // ever did, an empty document is refused by every reader, so nothing is trusted.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The HOST_DATA values a Coordinator may attest with.
    #[must_use]
    pub fn policy_hashes(&self) -> &[[u8; 32]] {
        &self.policy_hashes
    }

    /// The SEV-SNP reference values the Coordinator's VM must match (one of them).
    #[must_use]
    pub fn snp_reference_values(&self) -> &[SnpReferenceValues] {
        &self.snp_reference_values
    }
}

fn decode_hashes<'a>(keys: impl Iterator<Item = &'a str>) -> Result<Vec<[u8; 32]>, IdentityError> {
    keys.enumerate()
        .map(|(index, key)| {
            hexstring::decode_array::<32>(key).map_err(|source| IdentityError::InvalidPolicyHash {
                index,
                found: key.to_owned(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::manifest::{PolicyEntry, Role, SIMULATED_SNP_PLATFORM};

    fn values() -> SnpReferenceValues {
        SnpReferenceValues {
            platform: SIMULATED_SNP_PLATFORM.to_owned(),
            product_name: "Milan".to_owned(),
            trusted_measurement: "ab".repeat(48),
            simulated_ark_fingerprint: Some("cd".repeat(32)),
            ..SnpReferenceValues::default()
        }
    }

    fn identity() -> CoordinatorIdentity {
        CoordinatorIdentity::new(vec![[7; 32], [9; 32]], vec![values()]).unwrap()
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let text = identity().to_json();
        assert!(
            text.starts_with(&format!(
                "{{\"PolicyHashes\":[\"{}\",\"{}\"],\"SnpReferenceValues\":[{{\"Platform\":\"Simulated-SNP\"",
                "07".repeat(32),
                "09".repeat(32)
            )),
            "{text}"
        );
        assert!(!text.contains('\n'));
        let parsed = CoordinatorIdentity::from_json(&text).unwrap();
        assert_eq!(parsed, identity());
        assert_eq!(parsed.to_json(), text);
    }

    #[test]
    fn from_manifest_takes_the_coordinator_policies_and_snp_values() {
        let mut manifest = Manifest::default();
        let entry = |role| PolicyEntry {
            sans: None,
            workload_secret_id: String::new(),
            role,
        };
        manifest
            .policies
            .insert("07".repeat(32), entry(Role::Coordinator));
        manifest.policies.insert("08".repeat(32), entry(Role::None));
        manifest.reference_values.snp = vec![values()];
        let identity = CoordinatorIdentity::from_manifest(&manifest).unwrap();
        assert_eq!(identity.policy_hashes(), &[[7; 32]]);
        assert_eq!(identity.snp_reference_values(), &[values()]);

        manifest.reference_values.snp.clear();
        assert_eq!(
            CoordinatorIdentity::from_manifest(&manifest),
            Err(IdentityError::NoReferenceValues)
        );
        manifest.reference_values.snp = vec![values()];
        manifest.policies.remove(&"07".repeat(32));
        assert_eq!(
            CoordinatorIdentity::from_manifest(&manifest),
            Err(IdentityError::NoPolicyHash)
        );
        manifest
            .policies
            .insert("zz".to_owned(), entry(Role::Coordinator));
        assert!(matches!(
            CoordinatorIdentity::from_manifest(&manifest),
            Err(IdentityError::InvalidPolicyHash { index: 0, found, .. }) if found == "zz"
        ));
    }

    #[test]
    fn parser_errors_name_what_is_wrong() {
        let hash = "07".repeat(32);
        let entry = serde_json::to_string(&values()).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "EOF while parsing"),
            ("[]".to_owned(), "expected struct"),
            (
                format!("{{\"SnpReferenceValues\":[{entry}]}}"),
                "missing field `PolicyHashes`",
            ),
            (
                format!("{{\"PolicyHashes\":[\"{hash}\"]}}"),
                "missing field `SnpReferenceValues`",
            ),
            (
                format!(
                    "{{\"PolicyHashes\":[\"{hash}\"],\"SnpReferenceValues\":[{entry}],\"Extra\":1}}"
                ),
                "unknown field `Extra`",
            ),
            (
                format!("{{\"PolicyHashes\":\"{hash}\",\"SnpReferenceValues\":[{entry}]}}"),
                "expected a sequence",
            ),
        ];
        for (text, needle) in cases {
            match CoordinatorIdentity::from_json(&text) {
                Err(error @ IdentityError::Syntax { .. }) => {
                    assert!(error.to_string().contains(needle), "{text}: {error}");
                }
                other => panic!("{text}: expected a syntax error, got {other:?}"),
            }
        }

        let text = format!("{{\"PolicyHashes\":[],\"SnpReferenceValues\":[{entry}]}}");
        assert_eq!(
            CoordinatorIdentity::from_json(&text),
            Err(IdentityError::NoPolicyHash)
        );
        let text = format!("{{\"PolicyHashes\":[\"{hash}\"],\"SnpReferenceValues\":[]}}");
        assert_eq!(
            CoordinatorIdentity::from_json(&text),
            Err(IdentityError::NoReferenceValues)
        );
        let text = format!("{{\"PolicyHashes\":[\"{hash}\"],\"SnpReferenceValues\":null}}");
        assert_eq!(
            CoordinatorIdentity::from_json(&text),
            Err(IdentityError::NoReferenceValues)
        );

        let text =
            format!("{{\"PolicyHashes\":[\"{hash}\",\"abcd\"],\"SnpReferenceValues\":[{entry}]}}");
        let error = CoordinatorIdentity::from_json(&text).unwrap_err();
        assert_eq!(
            error,
            IdentityError::InvalidPolicyHash {
                index: 1,
                found: "abcd".to_owned(),
                source: HexError::WrongLength {
                    expected: 32,
                    found: 2
                },
            }
        );
        assert!(error.to_string().starts_with("PolicyHashes[1] \"abcd\""));

        let text = format!(
            "{{\"PolicyHashes\":[\"{hash}\"],\"SnpReferenceValues\":[{{\"MinimumTCB\":{{\"SNPVersion\":300}}}}]}}"
        );
        let error = CoordinatorIdentity::from_json(&text).unwrap_err();
        assert!(
            matches!(error, IdentityError::ReferenceValues { .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("snp[0].MinimumTCB.SNPVersion: svn must be in 0..=255"),
            "{error}"
        );

        let text = " ".repeat(MAX_IDENTITY_SIZE + 1);
        assert_eq!(
            CoordinatorIdentity::from_json(&text),
            Err(IdentityError::TooLarge {
                size: MAX_IDENTITY_SIZE + 1,
                max: MAX_IDENTITY_SIZE
            })
        );
    }
}
