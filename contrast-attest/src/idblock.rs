//! The ID block and the "anonymous" ID key that Contrast derives from the launch measurement and
//! the guest policy.
//!
//! At launch (`SNP_LAUNCH_FINISH`) the host may pass an ID block signed by an ID key; the AMD
//! firmware checks the signature, checks that the block's launch digest and policy equal the
//! guest's, and then writes SHA-384 of the ID key into the report's `ID_KEY_DIGEST`. Contrast
//! has no ID key of its own: it fixes the signature to `(r, s) = (2, 1)` and *recovers* a public
//! key for which that signature verifies over the ID block. Nobody knows the private key, but the
//! public key — and so `ID_KEY_DIGEST` — is a deterministic function of (measurement, policy).
//! A report carrying that digest was therefore launched with exactly that measurement and policy.
//!
//! ID block (0x60 bytes, integers little-endian):
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0x00 | 48 | LD | the launch measurement |
//! | 0x30 | 16 | FAMILY_ID | `01 00 … 00` |
//! | 0x40 | 16 | IMAGE_ID | `02 00 … 00` |
//! | 0x50 | 4 | VERSION | 1 |
//! | 0x54 | 4 | GUEST_SVN | 2 |
//! | 0x58 | 8 | POLICY | [`policy_to_bytes`] of the guest policy |
//!
//! ID key: `z = SHA-384(ID block)`; with `r = 2`, `s = 1` the two keys recoverable per SEC 1
//! §4.1.6 (the two points with x = 2) are sorted by (X, Y) as integers and the smaller one is
//! taken. Its SEV-API encoding (0x404 bytes) is `u32 LE 2` (P-384) ‖ Qx (0x48 bytes,
//! little-endian, zero-padded) ‖ Qy (likewise) ‖ 0x370 zero bytes; `ID_KEY_DIGEST` is SHA-384 of
//! those bytes.

use std::fmt;

use aws_lc_rs::digest;
use contrast_core::manifest::GuestPolicy;
use p384::elliptic_curve::ops::Reduce;
use p384::elliptic_curve::point::DecompressPoint;
use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::elliptic_curve::subtle::Choice;
use p384::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};

use crate::error::Error;

/// Length of the ID block.
pub const ID_BLOCK_LEN: usize = 0x60;
/// Length of an ECDSA public key in SEV-API format.
const SEV_PUBLIC_KEY_LEN: usize = 0x404;
/// Length of the ID authentication information structure.
pub const ID_AUTH_LEN: usize = 0x1000;
/// FAMILY_ID written into the ID block.
const FAMILY_ID: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// IMAGE_ID written into the ID block.
const IMAGE_ID: [u8; 16] = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// VERSION of the ID block format.
const ID_BLOCK_VERSION: u32 = 1;
/// GUEST_SVN written into the ID block (and so reported in the report's GUEST_SVN).
const GUEST_SVN: u32 = 2;
/// The fixed signature component r.
const SIGNATURE_R: u8 = 2;
/// The fixed signature component s.
const SIGNATURE_S: u8 = 1;
/// SEV-API curve id of P-384.
const CURVE_P384: u32 = 2;
/// ID_KEY_ALGO / AUTH_KEY_ALGO value for ECDSA P-384 with SHA-384.
const ALGO_ECDSA_P384_SHA384: u32 = 1;

const POLICY_SMT: u64 = 1 << 16;
const POLICY_RESERVED_ONE: u64 = 1 << 17;
const POLICY_MIGRATE_MA: u64 = 1 << 18;
const POLICY_DEBUG: u64 = 1 << 19;
const POLICY_SINGLE_SOCKET: u64 = 1 << 20;
const POLICY_CXL_ALLOW: u64 = 1 << 21;
const POLICY_MEM_AES_256_XTS: u64 = 1 << 22;
const POLICY_RAPL_DIS: u64 = 1 << 23;
const POLICY_CIPHERTEXT_HIDING: u64 = 1 << 24;
const POLICY_PAGE_SWAP_DISABLE: u64 = 1 << 25;

/// Encodes a guest policy as the 64-bit POLICY value (go-sev-guest `SnpPolicyToBytes`): ABI
/// minor in bits 7:0, major in 15:8, the flags in bits 16 and 18–25, and the reserved bit 17
/// always set (the firmware rejects a policy without it).
#[must_use]
pub fn policy_to_bytes(policy: &GuestPolicy) -> u64 {
    let flags = [
        (policy.smt, POLICY_SMT),
        (policy.migrate_ma, POLICY_MIGRATE_MA),
        (policy.debug, POLICY_DEBUG),
        (policy.single_socket, POLICY_SINGLE_SOCKET),
        (policy.cxl_allowed, POLICY_CXL_ALLOW),
        (policy.mem_aes_256_xts, POLICY_MEM_AES_256_XTS),
        (policy.rapl_dis, POLICY_RAPL_DIS),
        (policy.ciphertext_hiding_dram, POLICY_CIPHERTEXT_HIDING),
        (policy.page_swap_disable, POLICY_PAGE_SWAP_DISABLE),
    ];
    flags.iter().filter(|(set, _)| *set).fold(
        u64::from(policy.abi_minor) | u64::from(policy.abi_major) << 8 | POLICY_RESERVED_ONE,
        |acc, (_, bit)| acc | bit,
    )
}

/// The ID block for a launch measurement and guest policy.
#[must_use]
pub fn id_block(measurement: &[u8; 48], policy: &GuestPolicy) -> [u8; ID_BLOCK_LEN] {
    let mut block = [0u8; ID_BLOCK_LEN];
    let parts: [&[u8]; 6] = [
        measurement,
        &FAMILY_ID,
        &IMAGE_ID,
        &ID_BLOCK_VERSION.to_le_bytes(),
        &GUEST_SVN.to_le_bytes(),
        &policy_to_bytes(policy).to_le_bytes(),
    ];
    let mut offset = 0;
    for part in parts {
        if let Some(dst) = block.get_mut(offset..offset + part.len()) {
            dst.copy_from_slice(part);
        }
        offset += part.len();
    }
    block
}

/// The public ID key recovered for an ID block.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IdKey {
    x: [u8; 48],
    y: [u8; 48],
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdKey")
            .field("x", &hex::encode(self.x))
            .field("y", &hex::encode(self.y))
            .finish()
    }
}

impl IdKey {
    /// Recovers the ID key for `(measurement, policy)`: the smaller (by X, then Y) of the two
    /// P-384 keys for which `(r, s) = (2, 1)` is a valid signature over SHA-384 of the ID block.
    ///
    /// # Errors
    /// [`Error::IdKeyRecovery`] if no key can be recovered (does not happen for P-384 with
    /// r = 2, whose x-coordinate lies on the curve, but is not assumed).
    pub(crate) fn derive(measurement: &[u8; 48], policy: &GuestPolicy) -> Result<Self, Error> {
        Self::recover(&id_block(measurement, policy))
    }

    /// Recovers the ID key for an arbitrary 0x60-byte ID block (SEC 1 §4.1.6 with the x
    /// coordinate `r` itself, i.e. not `r + n`, as upstream does): for each point `R` with
    /// `x = r`, `Q = r⁻¹·(s·R − z·G)`; the smaller of the two `Q` by (X, Y) is the ID key.
    ///
    /// # Errors
    /// [`Error::IdKeyRecovery`].
    pub(crate) fn recover(id_block: &[u8; ID_BLOCK_LEN]) -> Result<Self, Error> {
        Self::candidates(id_block)?
            .into_iter()
            .next()
            .ok_or(Error::IdKeyRecovery {
                reason: "no point with x = r lies on P-384",
            })
    }

    /// Both recoverable keys, sorted by (X, Y).
    fn candidates(id_block: &[u8; ID_BLOCK_LEN]) -> Result<Vec<Self>, Error> {
        let z = Scalar::reduce_bytes(&FieldBytes::from(sha384(id_block)));
        let r = Scalar::from(u64::from(SIGNATURE_R));
        let s = Scalar::from(u64::from(SIGNATURE_S));
        let r_inv = Option::<Scalar>::from(r.invert()).ok_or(Error::IdKeyRecovery {
            reason: "r has no inverse modulo the group order",
        })?;
        let u1 = -(r_inv * z);
        let u2 = r_inv * s;
        let mut r_x = FieldBytes::default();
        if let Some(last) = r_x.last_mut() {
            *last = SIGNATURE_R;
        }
        let mut candidates = [0u8, 1]
            .into_iter()
            .filter_map(|y_odd| {
                let big_r = Option::<AffinePoint>::from(AffinePoint::decompress(
                    &r_x,
                    Choice::from(y_odd),
                ))?;
                let q = (ProjectivePoint::GENERATOR * u1 + ProjectivePoint::from(big_r) * u2)
                    .to_affine()
                    .to_encoded_point(false);
                let x: [u8; 48] = (*q.x()?).into();
                let y: [u8; 48] = (*q.y()?).into();
                Some(Self { x, y })
            })
            .collect::<Vec<_>>();
        // Fixed-width big-endian bytes compare like the integers they encode.
        candidates.sort_by_key(|key| (key.x, key.y));
        Ok(candidates)
    }

    /// The affine X coordinate, big-endian.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn x(&self) -> &[u8; 48] {
        &self.x
    }

    /// The affine Y coordinate, big-endian.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn y(&self) -> &[u8; 48] {
        &self.y
    }

    /// The key as a RustCrypto verifying key (e.g. to check the fixed signature).
    ///
    /// # Errors
    /// [`Error::IdKeyRecovery`] if the coordinates are not a point on P-384 (cannot happen for a
    /// recovered key).
    #[cfg(test)]
    pub(crate) fn verifying_key(&self) -> Result<p384::ecdsa::VerifyingKey, Error> {
        let point =
            p384::EncodedPoint::from_affine_coordinates((&self.x).into(), (&self.y).into(), false);
        p384::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| Error::IdKeyRecovery {
            reason: "the coordinates are not a point on P-384",
        })
    }

    /// The SEV-API encoding (0x404 bytes): curve id 2, Qx and Qy little-endian in 0x48-byte
    /// fields, then zeros.
    #[must_use]
    pub(crate) fn sev_bytes(&self) -> [u8; SEV_PUBLIC_KEY_LEN] {
        let mut out = [0u8; SEV_PUBLIC_KEY_LEN];
        if let Some(curve) = out.get_mut(0..4) {
            curve.copy_from_slice(&CURVE_P384.to_le_bytes());
        }
        write_le(&mut out, 0x04, &self.x);
        write_le(&mut out, 0x4C, &self.y);
        out
    }

    /// SHA-384 of [`IdKey::sev_bytes`]: the value the firmware writes into `ID_KEY_DIGEST`.
    #[must_use]
    pub(crate) fn digest(&self) -> [u8; 48] {
        sha384(&self.sev_bytes())
    }
}

/// The expected `ID_KEY_DIGEST` of a guest launched with Contrast's ID block for
/// `(measurement, policy)`.
///
/// # Errors
/// [`Error::IdKeyRecovery`] if no ID key can be recovered (does not happen for P-384).
pub fn id_key_digest(measurement: &[u8; 48], policy: &GuestPolicy) -> Result<[u8; 48], Error> {
    IdKey::derive(measurement, policy).map(|key| key.digest())
}

/// The ID authentication information structure (0x1000 bytes) that accompanies the ID block at
/// launch: ID_KEY_ALGO 1, AUTH_KEY_ALGO 0 (no author key), the fixed signature (r = 2, s = 1,
/// little-endian 0x48-byte fields) at 0x40, the ID key in SEV-API format at 0x240, the rest zero.
///
/// # Errors
/// [`Error::IdKeyRecovery`] if no ID key can be recovered (does not happen for P-384).
pub fn id_auth_block(
    measurement: &[u8; 48],
    policy: &GuestPolicy,
) -> Result<[u8; ID_AUTH_LEN], Error> {
    let key = IdKey::derive(measurement, policy)?;
    let mut out = [0u8; ID_AUTH_LEN];
    if let Some(algo) = out.get_mut(0..4) {
        algo.copy_from_slice(&ALGO_ECDSA_P384_SHA384.to_le_bytes());
    }
    if let Some(r) = out.get_mut(0x40) {
        *r = SIGNATURE_R;
    }
    if let Some(s) = out.get_mut(0x88) {
        *s = SIGNATURE_S;
    }
    if let Some(dst) = out.get_mut(0x240..0x240 + SEV_PUBLIC_KEY_LEN) {
        dst.copy_from_slice(&key.sev_bytes());
    }
    Ok(out)
}

/// SHA-384 of `bytes`.
#[must_use]
fn sha384(bytes: &[u8]) -> [u8; 48] {
    let mut out = [0u8; 48];
    out.copy_from_slice(digest::digest(&digest::SHA384, bytes).as_ref());
    out
}

/// Writes a big-endian coordinate little-endian at `offset` (the 0x48-byte field's upper 0x18
/// bytes stay zero).
fn write_le(out: &mut [u8], offset: usize, big_endian: &[u8; 48]) {
    if let Some(dst) = out.get_mut(offset..offset + 48) {
        for (d, s) in dst.iter_mut().zip(big_endian.iter().rev()) {
            *d = *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::ecdsa::Signature;
    use p384::ecdsa::signature::hazmat::PrehashVerifier;

    fn fixed_signature() -> Signature {
        let mut r = [0u8; 48];
        let mut s = [0u8; 48];
        r[47] = SIGNATURE_R;
        s[47] = SIGNATURE_S;
        Signature::from_scalars(r, s).unwrap()
    }

    fn contrast_policy() -> GuestPolicy {
        GuestPolicy {
            smt: true,
            ..GuestPolicy::default()
        }
    }

    #[test]
    fn policy_encoding() {
        assert_eq!(policy_to_bytes(&GuestPolicy::default()), 0x2_0000);
        assert_eq!(policy_to_bytes(&contrast_policy()), 0x3_0000);
        let aks = GuestPolicy {
            abi_minor: 31,
            ..contrast_policy()
        };
        assert_eq!(policy_to_bytes(&aks), 0x3_001f);
        let all = GuestPolicy {
            abi_minor: 0x12,
            abi_major: 0x34,
            smt: true,
            migrate_ma: true,
            debug: true,
            single_socket: true,
            cxl_allowed: true,
            mem_aes_256_xts: true,
            rapl_dis: true,
            ciphertext_hiding_dram: true,
            page_swap_disable: true,
        };
        assert_eq!(policy_to_bytes(&all), 0x03FF_3412);
        // Each flag sits on its own bit.
        for (policy, bit) in [
            (
                GuestPolicy {
                    migrate_ma: true,
                    ..GuestPolicy::default()
                },
                18,
            ),
            (
                GuestPolicy {
                    debug: true,
                    ..GuestPolicy::default()
                },
                19,
            ),
            (
                GuestPolicy {
                    single_socket: true,
                    ..GuestPolicy::default()
                },
                20,
            ),
            (
                GuestPolicy {
                    cxl_allowed: true,
                    ..GuestPolicy::default()
                },
                21,
            ),
            (
                GuestPolicy {
                    mem_aes_256_xts: true,
                    ..GuestPolicy::default()
                },
                22,
            ),
            (
                GuestPolicy {
                    rapl_dis: true,
                    ..GuestPolicy::default()
                },
                23,
            ),
            (
                GuestPolicy {
                    ciphertext_hiding_dram: true,
                    ..GuestPolicy::default()
                },
                24,
            ),
            (
                GuestPolicy {
                    page_swap_disable: true,
                    ..GuestPolicy::default()
                },
                25,
            ),
        ] {
            assert_eq!(policy_to_bytes(&policy), 0x2_0000 | 1 << bit);
        }
    }

    #[test]
    fn id_block_layout() {
        let measurement = [0xAB; 48];
        let block = id_block(&measurement, &contrast_policy());
        assert_eq!(&block[..48], &measurement);
        assert_eq!(block[0x30], 1);
        assert!(block[0x31..0x40].iter().all(|&b| b == 0));
        assert_eq!(block[0x40], 2);
        assert!(block[0x41..0x50].iter().all(|&b| b == 0));
        assert_eq!(&block[0x50..0x54], &[1, 0, 0, 0]);
        assert_eq!(&block[0x54..0x58], &[2, 0, 0, 0]);
        assert_eq!(&block[0x58..0x60], &0x3_0000u64.to_le_bytes());
    }

    #[test]
    fn recovered_key_verifies_the_fixed_signature_and_is_the_smaller_candidate() {
        let block = id_block(&[0x5C; 48], &contrast_policy());
        let z = sha384(&block);
        let candidates = IdKey::candidates(&block).unwrap();
        assert_eq!(candidates.len(), 2);
        assert_ne!(candidates[0], candidates[1]);
        for candidate in &candidates {
            candidate
                .verifying_key()
                .unwrap()
                .verify_prehash(&z, &fixed_signature())
                .unwrap();
        }
        let key = IdKey::recover(&block).unwrap();
        assert_eq!(key, candidates[0]);
        assert!((key.x, key.y) < (candidates[1].x, candidates[1].y));
        // A different block's key does not verify over this block.
        let other = IdKey::derive(&[0x5D; 48], &contrast_policy()).unwrap();
        assert!(
            other
                .verifying_key()
                .unwrap()
                .verify_prehash(&z, &fixed_signature())
                .is_err()
        );
    }

    #[test]
    fn sev_encoding() {
        let key = IdKey::derive(&[1; 48], &contrast_policy()).unwrap();
        let bytes = key.sev_bytes();
        assert_eq!(&bytes[..4], &[2, 0, 0, 0]);
        let mut x_le = key.x;
        x_le.reverse();
        let mut y_le = key.y;
        y_le.reverse();
        assert_eq!(&bytes[0x04..0x34], &x_le);
        assert!(bytes[0x34..0x4C].iter().all(|&b| b == 0));
        assert_eq!(&bytes[0x4C..0x7C], &y_le);
        assert!(bytes[0x7C..].iter().all(|&b| b == 0));
        assert_eq!(key.digest(), sha384(&bytes));
    }

    #[test]
    fn auth_block_layout() {
        let auth = id_auth_block(&[1; 48], &contrast_policy()).unwrap();
        let key = IdKey::derive(&[1; 48], &contrast_policy()).unwrap();
        assert_eq!(&auth[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(auth[0x40], 2);
        assert_eq!(auth[0x88], 1);
        assert_eq!(&auth[0x240..0x644], &key.sev_bytes());
        let nonzero: usize = auth.iter().filter(|&&b| b != 0).count();
        let key_nonzero = key.sev_bytes().iter().filter(|&&b| b != 0).count();
        assert_eq!(nonzero, 1 + 2 + key_nonzero);
    }

    #[test]
    fn digest_depends_on_measurement_and_policy() {
        let a = id_key_digest(&[1; 48], &contrast_policy()).unwrap();
        let b = id_key_digest(&[2; 48], &contrast_policy()).unwrap();
        let c = id_key_digest(&[1; 48], &GuestPolicy::default()).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, id_key_digest(&[1; 48], &contrast_policy()).unwrap());
    }

    #[test]
    fn id_key_known_answers() {
        // From fixtures/appraisal/idkey_kat.py (independent P-384 arithmetic in Python; both
        // candidates verified with `cryptography`).
        let upstream_ld: [u8; 48] = std::array::from_fn(|i| i as u8 + 1);
        let smt = GuestPolicy {
            smt: true,
            ..GuestPolicy::default()
        };
        let cases = [
            (
                upstream_ld,
                GuestPolicy::default(),
                "5b5cd3d7489eb7f3409cc98f26b0c341f396880de0edb5a83148c64fcd37de08541ab1ed780ce9d338c80b244ba73e9a",
                "a3657620c3f73a1578e2382b846e54e66981210d71eb1941ce5a6d01748f6976e60eecda81cf17c49f27cd20623cf0fa",
                "bd81f942a7c4fc8c227da5b621b6b185e4369d0b44e21253d6d0b090b45c084b2d64bef3f7cdc990ab97d4ad5cfb3e34",
            ),
            (
                upstream_ld,
                smt,
                "07810d909a0cfecd5b4574aec8f6d6ea3d2cce3d25b1732ec73d1fb37c693ac66952ffaa927e714a2efdb0930570d99b",
                "4a9bd253301a754bc4f0f3b8c1b35290e2910fd963a4b45fd7b41ad7c034a93fbd560558c97b00749c98ce68ad23ee37",
                "509a5e09cffe0f5dd47d401e719f2d1b72a5e5bd8f3a92ffd9b3a436c3f461102b2e8ed95579e467e112f98a5adea4d3",
            ),
            (
                [0; 48],
                smt,
                "549f4d23b0c47e6456615266953c7bf72ec5b31f0f7b3f743b8d8a68cccec0e299d08e9f76ba811e9e6a95a4817b59e8",
                "a7837a9ea602262dd93752a7ecb3529b5043b52cc34f279d3f1d0d8b7a048a9fe8867429d0eac9889c923433100aa2a1",
                "d527f3cd7acd9b40a42df59cf26aa63b8525d81f93d64bb9dbb643fd873c2dd3625655fd23c4ab6228837e7cd9576606",
            ),
        ];
        for (measurement, policy, x, y, digest) in cases {
            let key = IdKey::derive(&measurement, &policy).unwrap();
            assert_eq!(hex::encode(key.x()), x);
            assert_eq!(hex::encode(key.y()), y);
            assert_eq!(
                hex::encode(id_key_digest(&measurement, &policy).unwrap()),
                digest
            );
            assert_eq!(hex::encode(key.digest()), digest);
        }
    }
}
