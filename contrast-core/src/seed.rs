//! The seed engine: every long-lived secret of a Coordinator is derived from one random seed.
//!
//! The Coordinator generates a 64-byte secret seed and a 32-byte salt on the first manifest set
//! and hands the seed to the seed-share owners. From the seed, HKDF-SHA256 (RFC 5869, salt = the
//! 32-byte salt, output length = length of the input secret) derives:
//!
//! | value                    | input key material | info string                   |
//! |--------------------------|--------------------|-------------------------------|
//! | pod state seed           | seed               | `POD STATE SECRET`            |
//! | history seed (unused)    | seed               | `HISTORY SECRET`              |
//! | transaction signing seed | seed               | `TRANSACTION SIGNING SECRET`  |
//! | root CA seed             | seed               | `ROOT CA SEED`                |
//! | workload secret for *w*  | pod state seed     | `WORKLOAD SECRET ID: ` ‖ *w*  |
//!
//! The history signing key and the root CA key are P-384 keys derived deterministically from
//! the transaction signing seed and the root CA seed with the C2SP "det-keygen" procedure for
//! ECDSA: an HMAC_DRBG (HMAC-SHA256) instantiated with the seed as entropy and the
//! personalization string `det ECDSA key gen P-384`, from which 48 bytes are drawn and read as
//! the big-endian scalar `d`, which must satisfy `0 < d < n`.
//!
//! All of this is byte-compatible with upstream Contrast, so a seed recovered from upstream seed
//! shares yields the same keys here.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use p384::ecdsa::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Size of a freshly generated secret seed, in bytes.
pub const SEED_SIZE: usize = 64;
/// Size of the salt, in bytes (exactly; the size of a SHA-256 digest).
pub const SALT_SIZE: usize = 32;
/// Smallest seed the engine accepts, in bytes.
pub const MIN_SEED_SIZE: usize = 32;
/// Largest seed the engine accepts, in bytes: HKDF-SHA256 cannot produce more than 255 blocks of
/// 32 bytes, and every derived value is as long as the seed.
pub const MAX_SEED_SIZE: usize = 255 * 32;

/// HKDF info string for the pod state seed.
pub const INFO_POD_STATE_SECRET: &[u8] = b"POD STATE SECRET";
/// HKDF info string for the history seed.
pub const INFO_HISTORY_SECRET: &[u8] = b"HISTORY SECRET";
/// HKDF info string for the transaction (history head) signing seed.
pub const INFO_TRANSACTION_SIGNING_SECRET: &[u8] = b"TRANSACTION SIGNING SECRET";
/// HKDF info string for the root CA seed.
pub const INFO_ROOT_CA_SEED: &[u8] = b"ROOT CA SEED";
/// HKDF info prefix for workload secrets; the workload secret ID follows it directly.
pub const INFO_WORKLOAD_SECRET_PREFIX: &[u8] = b"WORKLOAD SECRET ID: ";
/// Personalization string of the deterministic P-384 key generation (C2SP det-keygen).
pub const DET_KEYGEN_PERSONALIZATION_P384: &[u8] = b"det ECDSA key gen P-384";

/// Why a seed, salt or derivation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The seed is shorter than [`MIN_SEED_SIZE`].
    #[error("seed too short: expected at least {min} bytes, found {found}")]
    SeedTooShort {
        /// Minimum length in bytes.
        min: usize,
        /// Length found.
        found: usize,
    },
    /// The seed is longer than HKDF-SHA256 can expand to ([`MAX_SEED_SIZE`]).
    #[error("seed too long: expected at most {max} bytes, found {found}")]
    SeedTooLong {
        /// Maximum length in bytes.
        max: usize,
        /// Length found.
        found: usize,
    },
    /// The salt is not exactly [`SALT_SIZE`] bytes long.
    #[error("salt has wrong length: expected {expected} bytes, found {found}")]
    SaltWrongLength {
        /// Required length in bytes.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// A workload secret was requested for the empty ID.
    #[error("workload secret id must not be empty")]
    EmptyWorkloadSecretId,
    /// The deterministic key generation drew a scalar outside `1..n`.
    #[error("deterministic {purpose} key generation drew a scalar outside 1..n")]
    DerivedKeyOutOfRange {
        /// Which key was being derived.
        purpose: &'static str,
    },
}

/// A secret seed (at least [`MIN_SEED_SIZE`] bytes). Zeroized on drop; `Debug` shows only its
/// length.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed(Vec<u8>);

impl Seed {
    /// Generates a fresh [`SEED_SIZE`]-byte seed.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Seed {
        let mut bytes = vec![0u8; SEED_SIZE];
        rng.fill_bytes(&mut bytes);
        Seed(bytes)
    }

    /// Wraps existing seed bytes (for example a recovered seed). The bytes are zeroized on
    /// drop, also when they are rejected.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Seed, SeedError> {
        let seed = Seed(bytes);
        check_seed_len(seed.0.len())?;
        Ok(seed)
    }

    /// The seed bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seed({} bytes, redacted)", self.0.len())
    }
}

/// The 32-byte salt of the seed engine. Not secret on its own, but zeroized on drop with the
/// rest of the key material.
#[derive(Clone, PartialEq, Eq, Debug, Zeroize, ZeroizeOnDrop)]
pub struct Salt([u8; SALT_SIZE]);

impl Salt {
    /// Generates a fresh salt.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Salt {
        let mut bytes = [0u8; SALT_SIZE];
        rng.fill_bytes(&mut bytes);
        Salt(bytes)
    }

    /// Copies a salt of exactly [`SALT_SIZE`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Salt, SeedError> {
        <[u8; SALT_SIZE]>::try_from(bytes)
            .map(Salt)
            .map_err(|_| SeedError::SaltWrongLength {
                expected: SALT_SIZE,
                found: bytes.len(),
            })
    }

    /// The salt bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; SALT_SIZE] {
        &self.0
    }
}

impl From<[u8; SALT_SIZE]> for Salt {
    fn from(bytes: [u8; SALT_SIZE]) -> Salt {
        Salt(bytes)
    }
}

/// A workload secret: the per-workload-secret-ID key handed to initializers. Zeroized on drop;
/// `Debug` shows only its length.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WorkloadSecret(Vec<u8>);

impl WorkloadSecret {
    /// The secret bytes (as long as the seed).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WorkloadSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkloadSecret({} bytes, redacted)", self.0.len())
    }
}

/// Derives every Coordinator secret from a seed and salt. Keeps the seed and salt (peer recovery
/// hands them on). All secrets are zeroized on drop; `Debug` redacts them.
pub struct SeedEngine {
    seed: Zeroizing<Vec<u8>>,
    salt: Salt,
    pod_state_seed: Zeroizing<Vec<u8>>,
    history_seed: Zeroizing<Vec<u8>>,
    // `SigningKey` zeroizes its scalar on drop.
    history_signing_key: SigningKey,
    root_ca_key: SigningKey,
}

impl SeedEngine {
    /// Builds the engine: the salt must be exactly [`SALT_SIZE`] bytes, the seed at least
    /// [`MIN_SEED_SIZE`] (and at most [`MAX_SEED_SIZE`]) bytes.
    pub fn new(seed: &[u8], salt: &[u8]) -> Result<SeedEngine, SeedError> {
        let salt = Salt::from_slice(salt)?;
        check_seed_len(seed.len())?;

        let hkdf = Hkdf::<Sha256>::new(Some(salt.as_bytes()), seed);
        let pod_state_seed = hkdf_expand(&hkdf, &[INFO_POD_STATE_SECRET], seed.len())?;
        let history_seed = hkdf_expand(&hkdf, &[INFO_HISTORY_SECRET], seed.len())?;
        let transaction_signing_seed =
            hkdf_expand(&hkdf, &[INFO_TRANSACTION_SIGNING_SECRET], seed.len())?;
        let root_ca_seed = hkdf_expand(&hkdf, &[INFO_ROOT_CA_SEED], seed.len())?;

        let history_signing_key =
            det_keygen_p384(&transaction_signing_seed, "transaction signing")?;
        let root_ca_key = det_keygen_p384(&root_ca_seed, "root CA")?;

        Ok(SeedEngine {
            seed: Zeroizing::new(seed.to_vec()),
            salt,
            pod_state_seed,
            history_seed,
            history_signing_key,
            root_ca_key,
        })
    }

    /// Builds the engine from typed seed and salt.
    pub fn from_parts(seed: &Seed, salt: &Salt) -> Result<SeedEngine, SeedError> {
        SeedEngine::new(seed.as_bytes(), salt.as_bytes())
    }

    /// The secret seed.
    #[must_use]
    pub fn seed(&self) -> &[u8] {
        &self.seed
    }

    /// The salt.
    #[must_use]
    pub fn salt(&self) -> &[u8; SALT_SIZE] {
        self.salt.as_bytes()
    }

    /// The pod state seed (HKDF info `POD STATE SECRET`), the root of all workload secrets.
    #[must_use]
    pub fn pod_state_seed(&self) -> &[u8] {
        &self.pod_state_seed
    }

    /// The history seed (HKDF info `HISTORY SECRET`); derived as upstream does, currently unused.
    #[must_use]
    pub fn history_seed(&self) -> &[u8] {
        &self.history_seed
    }

    /// The workload secret for `workload_secret_id`: HKDF over the pod state seed with info
    /// `WORKLOAD SECRET ID: <id>`. Any non-empty string is a valid ID.
    pub fn workload_secret(&self, workload_secret_id: &str) -> Result<WorkloadSecret, SeedError> {
        if workload_secret_id.is_empty() {
            return Err(SeedError::EmptyWorkloadSecretId);
        }
        let hkdf = Hkdf::<Sha256>::new(Some(self.salt.as_bytes()), &self.pod_state_seed);
        let mut secret = hkdf_expand(
            &hkdf,
            &[INFO_WORKLOAD_SECRET_PREFIX, workload_secret_id.as_bytes()],
            self.pod_state_seed.len(),
        )?;
        // Move the bytes out; the emptied `Zeroizing` wrapper has nothing left to wipe.
        Ok(WorkloadSecret(std::mem::take(&mut *secret)))
    }

    /// The P-384 key that signs the history head (`transitions/latest`).
    #[must_use]
    pub fn history_signing_key(&self) -> &SigningKey {
        &self.history_signing_key
    }

    /// The public half of [`SeedEngine::history_signing_key`].
    #[must_use]
    pub fn history_verifying_key(&self) -> VerifyingKey {
        *self.history_signing_key.verifying_key()
    }

    /// The P-384 root CA key.
    #[must_use]
    pub fn root_ca_key(&self) -> &SigningKey {
        &self.root_ca_key
    }
}

impl std::fmt::Debug for SeedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedEngine")
            .field("seed", &format_args!("{} bytes, redacted", self.seed.len()))
            .field("salt", &crate::hexstring::encode(self.salt.as_bytes()))
            .finish_non_exhaustive()
    }
}

/// HKDF-Expand of `len` bytes with the concatenation of `info_parts` as info.
fn hkdf_expand(
    hkdf: &Hkdf<Sha256>,
    info_parts: &[&[u8]],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, SeedError> {
    let mut okm = Zeroizing::new(vec![0u8; len]);
    // Only fails for outputs longer than 255 blocks, which `check_seed_len` rules out.
    hkdf.expand_multi_info(info_parts, &mut okm)
        .map_err(|_| SeedError::SeedTooLong {
            max: MAX_SEED_SIZE,
            found: len,
        })?;
    Ok(okm)
}

fn check_seed_len(len: usize) -> Result<(), SeedError> {
    if len < MIN_SEED_SIZE {
        return Err(SeedError::SeedTooShort {
            min: MIN_SEED_SIZE,
            found: len,
        });
    }
    if len > MAX_SEED_SIZE {
        return Err(SeedError::SeedTooLong {
            max: MAX_SEED_SIZE,
            found: len,
        });
    }
    Ok(())
}

/// HMAC-SHA256 with a 32-byte key over the concatenation of `parts`.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    // HMAC pads keys shorter than the block size with zeros, so a zero-padded 64-byte key is the
    // same function, and the fixed-size constructor cannot fail.
    let mut block_key = Zeroizing::new([0u8; 64]);
    block_key[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as Mac>::new(&(*block_key).into());
    for part in parts {
        mac.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// C2SP det-keygen for P-384: HMAC_DRBG(HMAC-SHA256) instantiated with `seed` as entropy and the
/// P-384 personalization string, 48 bytes generated, read as the big-endian scalar.
fn det_keygen_p384(seed: &[u8], purpose: &'static str) -> Result<SigningKey, SeedError> {
    const SCALAR_SIZE: usize = 48;
    let pers = DET_KEYGEN_PERSONALIZATION_P384;

    // HMAC_DRBG instantiate = update(seed material) with K = 0x00.., V = 0x01...
    let mut k = Zeroizing::new([0u8; 32]);
    let mut v = Zeroizing::new([1u8; 32]);
    k = hmac_sha256(&k, &[&v[..], &[0x00], seed, pers]);
    v = hmac_sha256(&k, &[&v[..]]);
    k = hmac_sha256(&k, &[&v[..], &[0x01], seed, pers]);
    v = hmac_sha256(&k, &[&v[..]]);

    // Generate: V = HMAC(K, V) until 48 bytes are collected (two rounds).
    let mut scalar = Zeroizing::new([0u8; SCALAR_SIZE]);
    for chunk in scalar.chunks_mut(32) {
        v = hmac_sha256(&k, &[&v[..]]);
        for (dst, src) in chunk.iter_mut().zip(v.iter()) {
            *dst = *src;
        }
    }

    signing_key_from_scalar(&scalar, purpose)
}

/// The P-384 key with big-endian scalar `scalar`, which must satisfy `0 < d < n`.
fn signing_key_from_scalar(
    scalar: &[u8; 48],
    purpose: &'static str,
) -> Result<SigningKey, SeedError> {
    SigningKey::from_slice(scalar).map_err(|_| SeedError::DerivedKeyOutOfRange { purpose })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P384_ORDER: [u8; 48] = hex_literal::hex!(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973"
    );

    #[test]
    fn scalar_zero_is_rejected() {
        assert_eq!(
            signing_key_from_scalar(&[0; 48], "root CA").unwrap_err(),
            SeedError::DerivedKeyOutOfRange { purpose: "root CA" }
        );
    }

    #[test]
    fn scalar_at_or_above_order_is_rejected() {
        assert_eq!(
            signing_key_from_scalar(&P384_ORDER, "transaction signing").unwrap_err(),
            SeedError::DerivedKeyOutOfRange {
                purpose: "transaction signing"
            }
        );
        assert!(signing_key_from_scalar(&[0xff; 48], "root CA").is_err());
    }

    #[test]
    fn scalar_just_below_order_is_accepted() {
        let mut below = P384_ORDER;
        below[47] -= 1;
        assert!(signing_key_from_scalar(&below, "root CA").is_ok());
        let mut one = [0u8; 48];
        one[47] = 1;
        assert!(signing_key_from_scalar(&one, "root CA").is_ok());
    }

    #[test]
    fn hmac_with_padded_key_matches_rfc4231_case_2() {
        // RFC 4231 test case 2 uses the 4-byte key "Jefe"; HMAC zero-pads short keys, so the
        // 32-byte zero-padded key gives the same MAC.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            *mac,
            hex_literal::hex!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
