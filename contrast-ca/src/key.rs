//! The mesh CA key: a random P-384 key per manifest generation.
//!
//! The Coordinator draws a new one on every `SetManifest` and user recovery; peer recovery hands
//! the current one to the recovering Coordinator as a PEM `EC PRIVATE KEY` (SEC1, named curve and
//! public key included), the encoding Go's `x509.MarshalECPrivateKey` produces. The PEM codec is
//! the one `contrast_core::owner` uses for `workload-owner.pem`, so both match openssl and Go byte
//! for byte.

use contrast_core::owner::WorkloadOwnerPrivateKey;
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::EncodePrivateKey;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::cert::subject_key_identifier;
use crate::error::CaError;

/// The mesh CA's P-384 signing key. Zeroized on drop (by `p384`); `Debug` shows only the key
/// identifier.
#[derive(Clone)]
pub struct MeshCaKey {
    signing_key: SigningKey,
}

impl std::fmt::Debug for MeshCaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCaKey")
            .field(
                "subject_key_identifier",
                &hex::encode(subject_key_identifier(&self.signing_key)),
            )
            .finish_non_exhaustive()
    }
}

impl MeshCaKey {
    /// Draws a new random P-384 key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self {
            signing_key: SigningKey::random(rng),
        }
    }

    /// Wraps an existing key.
    #[must_use]
    pub fn from_signing_key(signing_key: SigningKey) -> Self {
        Self { signing_key }
    }

    /// Parses the PEM a peer sends in `RecoverResponse.MeshCAKey`: `EC PRIVATE KEY` (SEC1) or
    /// `PRIVATE KEY` (PKCS#8), on P-384, with a matching embedded public key when present.
    ///
    /// # Errors
    /// [`CaError::MeshCaKey`] with the owner-key codec's reason.
    pub fn from_pem(pem: &str) -> Result<Self, CaError> {
        // The owner-key codec does the strict checks (label, curve, scalar range, public key).
        let checked = WorkloadOwnerPrivateKey::from_pem(pem)
            .map_err(|source| CaError::MeshCaKey { source })?;
        let sec1_pem = checked
            .to_sec1_pem()
            .map_err(|source| CaError::MeshCaKey { source })?;
        let secret =
            p384::SecretKey::from_sec1_pem(&sec1_pem).map_err(|_| CaError::InvalidMeshCaKey {
                reason: "the re-encoded SEC1 key does not parse",
            })?;
        Ok(Self {
            signing_key: SigningKey::from(secret),
        })
    }

    /// The PEM `EC PRIVATE KEY` (SEC1, LF line endings) for `RecoverResponse.MeshCAKey`.
    ///
    /// # Errors
    /// [`CaError::MeshCaKey`] or [`CaError::InvalidMeshCaKey`] if encoding fails.
    pub fn to_sec1_pem(&self) -> Result<Zeroizing<String>, CaError> {
        let pkcs8 = self
            .signing_key
            .to_pkcs8_der()
            .map_err(|_| CaError::InvalidMeshCaKey {
                reason: "the key cannot be encoded as PKCS#8",
            })?;
        WorkloadOwnerPrivateKey::from_pkcs8_der(pkcs8.as_bytes())
            .and_then(|key| key.to_sec1_pem())
            .map_err(|source| CaError::MeshCaKey { source })
    }

    /// The signing key.
    #[must_use]
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The public key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// The subject key identifier the intermediate and mesh CA certificates carry.
    #[must_use]
    pub fn subject_key_identifier(&self) -> [u8; 20] {
        subject_key_identifier(&self.signing_key)
    }
}
