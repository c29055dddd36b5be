//! Owner keys and the rules that authorise manifest updates and recovery.
//!
//! Contrast knows two kinds of owners, both named in the manifest:
//!
//! - **Workload owners** may replace the manifest. Their keys are ECDSA keys (P-384 by
//!   default, P-256 accepted). The newest manifests list them in `WorkloadOwnerPubKeys` as
//!   hex of the PKIX `SubjectPublicKeyInfo` DER; older manifests list
//!   `WorkloadOwnerKeyDigests`, the hex SHA-256 of that same DER. The private key file
//!   (`workload-owner.pem`) is a PEM `EC PRIVATE KEY` (SEC1 `ECPrivateKey` with the named-curve
//!   parameters and the public key).
//! - **Seed-share owners** receive the seed, RSA-OAEP encrypted (see [`crate::seedshare`]), and
//!   may recover a Coordinator. Their keys are RSA keys (4096 bits by default). The manifest
//!   lists them in `SeedshareOwnerPubKeys` as hex of the PKCS#1 `RSAPublicKey` DER. The private
//!   key file (`seedshare-owner.pem`) is a PEM `RSA PRIVATE KEY` (PKCS#1).
//!
//! An update is authorised either by the caller's TLS client key (it must be a listed workload
//! owner, [`authorize_update_by_key`]) or by a detached signature (G3,
//! [`verify_update_signature`]): the owner signs the **next transition hash**
//! `SHA-256(SHA-256(new manifest) ‖ previous transition hash)` ([`next_transition_hash`]), or
//! rather its 64 lowercase hex characters ([`transition_signing_blob`]), with ECDSA over
//! SHA-256 and an ASN.1 DER signature. This is what `openssl dgst -sha256 -sign key.pem blob`
//! produces.
//!
//! A recovery is authorised when SHA-256 of the caller's PKCS#1 public key DER equals SHA-256 of
//! one listed seed-share owner key ([`authorize_recovery`]). Seed-share owners can never
//! change once set ([`check_seedshare_owners_unchanged`]).
//!
//! Deviations from upstream, all stricter:
//!
//! - RSA seed-share owner keys must have 2048 to 8192 bits and the public exponent 65537
//!   (upstream accepts any key Go can parse). 8192 bits is the largest key aws-lc encrypts to.
//! - ECDSA public keys must use the uncompressed point encoding (Go's PKIX parser rejects
//!   compressed points too, so no upstream-valid key is refused).
//! - List entries that are not valid hex or not a valid key never match anything; manifest
//!   validation rejects them before these rules run.

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{
    Decode, DecodeValue, Encode, EncodeValue, Header, Length, Reader, Sequence, SliceReader,
    TagMode, TagNumber, Writer,
};
use p384::ecdsa::signature::hazmat::PrehashSigner;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::hexstring::{self, HexError};

/// `id-ecPublicKey` (RFC 5480).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` / P-256.
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `secp384r1` / P-384.
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// PEM label of a SEC1 EC private key.
const PEM_LABEL_SEC1: &str = "EC PRIVATE KEY";
/// PEM label of a PKCS#8 private key.
const PEM_LABEL_PKCS8: &str = "PRIVATE KEY";
/// PEM label of a PKCS#1 RSA private key.
const PEM_LABEL_PKCS1: &str = "RSA PRIVATE KEY";
/// PEM label of a PKIX public key.
const PEM_LABEL_SPKI: &str = "PUBLIC KEY";
/// PEM label of a PKCS#1 RSA public key.
const PEM_LABEL_PKCS1_PUBLIC: &str = "RSA PUBLIC KEY";

/// Smallest accepted seed-share owner RSA modulus, in bits.
pub const MIN_RSA_MODULUS_BITS: usize = 2048;
/// Largest accepted seed-share owner RSA modulus, in bits (the largest aws-lc encrypts to).
pub const MAX_RSA_MODULUS_BITS: usize = 8192;
/// The only accepted RSA public exponent, big-endian.
const RSA_EXPONENT_65537: [u8; 3] = [0x01, 0x00, 0x01];

/// Why an owner key was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerKeyError {
    /// A manifest entry is not valid hex.
    #[error("owner key is not valid hex: {source}")]
    Hex {
        /// The hex error.
        #[from]
        source: HexError,
    },
    /// The text is not a single well-formed PEM block.
    #[error("owner key is not valid PEM: {source}")]
    Pem {
        /// The PEM decoding error.
        source: der::Error,
    },
    /// The PEM block has a label this key type does not accept.
    #[error("unexpected PEM block `{found}`, expected {expected}")]
    UnexpectedPemLabel {
        /// The accepted labels.
        expected: &'static str,
        /// The label found.
        found: String,
    },
    /// The DER structure could not be decoded.
    #[error("malformed {structure}: {source}")]
    MalformedDer {
        /// The structure that was expected.
        structure: &'static str,
        /// The DER error.
        source: der::Error,
    },
    /// The key uses another public-key algorithm.
    #[error("unsupported key algorithm {found}, expected {expected}")]
    UnsupportedAlgorithm {
        /// The algorithm expected.
        expected: &'static str,
        /// The algorithm OID found.
        found: String,
    },
    /// An EC key does not name its curve (or uses explicit curve parameters).
    #[error("EC key does not name its curve with an OID")]
    MissingCurve,
    /// An EC key is on a curve other than P-256 or P-384 (P-384 only for private keys).
    #[error("unsupported elliptic curve {found}, expected {expected}")]
    UnsupportedCurve {
        /// The curves accepted here.
        expected: &'static str,
        /// The curve OID found.
        found: String,
    },
    /// The EC public point is not acceptable.
    #[error("invalid {curve} public point: {reason}")]
    InvalidEcPoint {
        /// The key's curve.
        curve: EcCurve,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The EC private key is not acceptable.
    #[error("invalid EC private key: {reason}")]
    InvalidEcPrivateKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A PKIX `SubjectPublicKeyInfo` was given where a PKCS#1 `RSAPublicKey` is expected.
    #[error(
        "expected a PKCS#1 RSAPublicKey, found a PKIX SubjectPublicKeyInfo (algorithm {algorithm})"
    )]
    SpkiInsteadOfPkcs1 {
        /// The algorithm OID of the SPKI found.
        algorithm: String,
    },
    /// The RSA modulus is too short.
    #[error("RSA key has {bits} bits, at least {minimum} required")]
    RsaKeyTooSmall {
        /// Modulus length found.
        bits: usize,
        /// Minimum accepted.
        minimum: usize,
    },
    /// The RSA modulus is too long.
    #[error("RSA key has {bits} bits, at most {maximum} supported")]
    RsaKeyTooLarge {
        /// Modulus length found.
        bits: usize,
        /// Maximum accepted.
        maximum: usize,
    },
    /// The RSA public exponent is not 65537.
    #[error("RSA public exponent 0x{exponent_hex} is not supported, expected 65537")]
    UnsupportedRsaExponent {
        /// The exponent found, as big-endian hex.
        exponent_hex: String,
    },
    /// aws-lc rejected the RSA key.
    #[error("RSA key rejected: {reason}")]
    RsaKeyRejected {
        /// aws-lc's reason.
        reason: &'static str,
    },
    /// Encoding a key failed.
    #[error("encoding {structure} failed: {source}")]
    Encoding {
        /// The structure being encoded.
        structure: &'static str,
        /// The DER error.
        source: der::Error,
    },
    /// ECDSA signing failed.
    #[error("ECDSA signing failed")]
    SigningFailed,
}

/// Why a manifest update or a recovery was not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The current manifest lists no workload owner: it is immutable.
    #[error("setting manifest is disabled: the current manifest has no workload owner keys")]
    UpdatesDisabled,
    /// The caller's key is not a workload owner of the current manifest.
    #[error("caller key (SHA-256 {caller_digest}) is not a workload owner of the current manifest")]
    NotAnOwner {
        /// Hex SHA-256 of the caller's PKIX DER.
        caller_digest: String,
    },
    /// The update signature is not a DER ECDSA `(r, s)` sequence.
    #[error("update signature is not a DER ECDSA signature: {reason}")]
    MalformedSignature {
        /// What the DER decoder reported.
        reason: String,
    },
    /// No workload owner key verifies the update signature (wrong key or wrong transition).
    #[error(
        "update signature does not verify under any of the {keys_tried} workload owner keys for this transition"
    )]
    BadSignature {
        /// Number of keys in the current manifest.
        keys_tried: usize,
    },
    /// The manifest lists no seed-share owner, so nobody may recover.
    #[error("recovery is impossible: the manifest has no seedshare owner keys")]
    NoSeedshareOwners,
    /// The caller's RSA key is not a seed-share owner.
    #[error("caller key (SHA-256 {caller_digest}) is not a seedshare owner of the manifest")]
    RecoveryKeyNotListed {
        /// Hex SHA-256 of the caller's PKCS#1 DER.
        caller_digest: String,
    },
    /// The new manifest changes the seed-share owner list.
    #[error(
        "changes to seedshare owners are not allowed: current list has {current_len} entries, new list has {new_len}, first difference at index {first_difference}"
    )]
    SeedshareOwnersChanged {
        /// Entries in the current manifest.
        current_len: usize,
        /// Entries in the new manifest.
        new_len: usize,
        /// Index of the first entry that differs.
        first_difference: usize,
    },
}

/// The elliptic curve of a workload owner key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EcCurve {
    /// NIST P-256 (`secp256r1`).
    P256,
    /// NIST P-384 (`secp384r1`), upstream's default.
    P384,
}

impl std::fmt::Display for EcCurve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
        })
    }
}

impl EcCurve {
    /// Length of an uncompressed SEC1 point: `04 ‖ x ‖ y`.
    fn uncompressed_point_len(self) -> usize {
        match self {
            EcCurve::P256 => 1 + 2 * 32,
            EcCurve::P384 => 1 + 2 * 48,
        }
    }

    fn verification_algorithm(self) -> &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm {
        match self {
            EcCurve::P256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            EcCurve::P384 => &aws_lc_rs::signature::ECDSA_P384_SHA256_ASN1,
        }
    }
}

/// Decodes one PEM block (surrounding whitespace ignored) into its label and DER bytes.
fn decode_pem(pem: &str) -> Result<(String, Zeroizing<Vec<u8>>), OwnerKeyError> {
    let (label, der) = der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| OwnerKeyError::Pem { source: e.into() })?;
    Ok((label.to_owned(), Zeroizing::new(der)))
}

// ---------------------------------------------------------------------------------------------
// Workload owner keys
// ---------------------------------------------------------------------------------------------

/// A workload owner's ECDSA public key, as listed in the manifest.
///
/// Keeps the exact PKIX DER it was parsed from: that is what `WorkloadOwnerPubKeys` lists and
/// what `WorkloadOwnerKeyDigests` hashes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WorkloadOwnerPublicKey {
    pkix_der: Vec<u8>,
    curve: EcCurve,
    /// The uncompressed SEC1 point, as aws-lc's ECDSA verifier takes it.
    point: Vec<u8>,
}

impl std::fmt::Debug for WorkloadOwnerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadOwnerPublicKey")
            .field("curve", &self.curve)
            .field("digest", &hexstring::encode(self.digest()))
            .finish()
    }
}

/// The named curve of an `id-ecPublicKey` algorithm identifier (SPKI or PKCS#8).
fn ec_curve_oid(
    algorithm: &spki::AlgorithmIdentifierRef<'_>,
) -> Result<ObjectIdentifier, OwnerKeyError> {
    if algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(OwnerKeyError::UnsupportedAlgorithm {
            expected: "id-ecPublicKey (1.2.840.10045.2.1)",
            found: algorithm.oid.to_string(),
        });
    }
    algorithm
        .parameters
        .and_then(|params| params.decode_as::<ObjectIdentifier>().ok())
        .ok_or(OwnerKeyError::MissingCurve)
}

impl WorkloadOwnerPublicKey {
    /// Parses a PKIX `SubjectPublicKeyInfo` DER holding a P-256 or P-384 ECDSA key, and checks
    /// that the point is on the curve.
    pub fn from_pkix_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|source| {
            OwnerKeyError::MalformedDer {
                structure: "PKIX SubjectPublicKeyInfo",
                source,
            }
        })?;
        let curve_oid = ec_curve_oid(&spki.algorithm)?;
        let curve = curve_from_oid(curve_oid, "P-256 or P-384")?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or(OwnerKeyError::InvalidEcPoint {
                curve,
                reason: "the BIT STRING has unused bits",
            })?;
        validate_uncompressed_point(curve, point)?;
        Ok(Self {
            pkix_der: der.to_vec(),
            curve,
            point: point.to_vec(),
        })
    }

    /// Parses a `WorkloadOwnerPubKeys` manifest entry (hex of the PKIX DER).
    pub fn from_hex(hex: &str) -> Result<Self, OwnerKeyError> {
        Self::from_pkix_der(&hexstring::decode(hex)?)
    }

    /// Parses a PEM `PUBLIC KEY` block.
    pub fn from_pem(pem: &str) -> Result<Self, OwnerKeyError> {
        let (label, der) = decode_pem(pem)?;
        if label != PEM_LABEL_SPKI {
            return Err(OwnerKeyError::UnexpectedPemLabel {
                expected: "`PUBLIC KEY`",
                found: label,
            });
        }
        Self::from_pkix_der(&der)
    }

    /// What a user may hand over as a workload owner's key: a `PUBLIC KEY` PEM, or a private
    /// key PEM ([`WorkloadOwnerPrivateKey::from_pem`]) whose public key is taken. When neither
    /// parses, the private-key error says why.
    pub fn from_public_or_private_pem(pem: &str) -> Result<Self, OwnerKeyError> {
        if let Ok(public) = Self::from_pem(pem) {
            return Ok(public);
        }
        WorkloadOwnerPrivateKey::from_pem(pem).map(|key| key.public_key())
    }

    /// The exact PKIX DER.
    #[must_use]
    pub fn pkix_der(&self) -> &[u8] {
        &self.pkix_der
    }

    /// The `WorkloadOwnerPubKeys` entry: lowercase hex of the PKIX DER.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hexstring::encode(&self.pkix_der)
    }

    /// SHA-256 of the PKIX DER: the old-schema `WorkloadOwnerKeyDigests` entry (hex-encoded).
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        crate::sha256(&self.pkix_der)
    }

    /// The key's curve.
    #[must_use]
    pub fn curve(&self) -> EcCurve {
        self.curve
    }

    /// Whether `signature_der` is this key's ECDSA signature over SHA-256 of `message`.
    fn verifies(&self, message: &[u8], signature_der: &[u8]) -> bool {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            self.curve.verification_algorithm(),
            &self.point,
        )
        .verify(message, signature_der)
        .is_ok()
    }
}

fn curve_from_oid(oid: ObjectIdentifier, expected: &'static str) -> Result<EcCurve, OwnerKeyError> {
    if oid == SECP384R1 {
        Ok(EcCurve::P384)
    } else if oid == SECP256R1 {
        Ok(EcCurve::P256)
    } else {
        Err(OwnerKeyError::UnsupportedCurve {
            expected,
            found: oid.to_string(),
        })
    }
}

fn validate_uncompressed_point(curve: EcCurve, point: &[u8]) -> Result<(), OwnerKeyError> {
    // Go's PKIX parser only accepts uncompressed points; so do we, which also keeps the DER of
    // every accepted key canonical.
    if point.first() != Some(&0x04) || point.len() != curve.uncompressed_point_len() {
        return Err(OwnerKeyError::InvalidEcPoint {
            curve,
            reason: "not an uncompressed SEC1 point of the curve's size",
        });
    }
    let on_curve = match curve {
        EcCurve::P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
        EcCurve::P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
    };
    if on_curve {
        Ok(())
    } else {
        Err(OwnerKeyError::InvalidEcPoint {
            curve,
            reason: "the point is not on the curve",
        })
    }
}

/// SEC1 `ECPrivateKey` (RFC 5915): version 1, the scalar, and optionally the named curve and
/// the public point. Upstream (Go) requires the curve, so the encoder always writes it.
struct EcPrivateKeyDer<'a> {
    private_key: &'a [u8],
    curve: Option<ObjectIdentifier>,
    public_key: Option<BitStringRef<'a>>,
}

const SEC1_VERSION: u8 = 1;
const SEC1_PARAMETERS_TAG: TagNumber = TagNumber::N0;
const SEC1_PUBLIC_KEY_TAG: TagNumber = TagNumber::N1;

impl<'a> DecodeValue<'a> for EcPrivateKeyDer<'a> {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |reader| {
            if u8::decode(reader)? != SEC1_VERSION {
                return Err(der::Tag::Integer.value_error());
            }
            let private_key = OctetStringRef::decode(reader)?.as_bytes();
            let curve = reader
                .context_specific::<ObjectIdentifier>(SEC1_PARAMETERS_TAG, TagMode::Explicit)?;
            let public_key = reader
                .context_specific::<BitStringRef<'a>>(SEC1_PUBLIC_KEY_TAG, TagMode::Explicit)?;
            Ok(Self {
                private_key,
                curve,
                public_key,
            })
        })
    }
}

impl EcPrivateKeyDer<'_> {
    fn parameters_field(&self) -> Option<der::asn1::ContextSpecificRef<'_, ObjectIdentifier>> {
        self.curve
            .as_ref()
            .map(|value| der::asn1::ContextSpecificRef {
                tag_number: SEC1_PARAMETERS_TAG,
                tag_mode: TagMode::Explicit,
                value,
            })
    }

    fn public_key_field(&self) -> Option<der::asn1::ContextSpecificRef<'_, BitStringRef<'_>>> {
        self.public_key
            .as_ref()
            .map(|value| der::asn1::ContextSpecificRef {
                tag_number: SEC1_PUBLIC_KEY_TAG,
                tag_mode: TagMode::Explicit,
                value,
            })
    }
}

impl EncodeValue for EcPrivateKeyDer<'_> {
    fn value_len(&self) -> der::Result<Length> {
        SEC1_VERSION.encoded_len()?
            + OctetStringRef::new(self.private_key)?.encoded_len()?
            + self.parameters_field().encoded_len()?
            + self.public_key_field().encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        SEC1_VERSION.encode(writer)?;
        OctetStringRef::new(self.private_key)?.encode(writer)?;
        self.parameters_field().encode(writer)?;
        self.public_key_field().encode(writer)?;
        Ok(())
    }
}

impl<'a> Sequence<'a> for EcPrivateKeyDer<'a> {}

/// A workload owner's P-384 private key. Zeroized on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct WorkloadOwnerPrivateKey {
    signing_key: p384::ecdsa::SigningKey,
    public_key: WorkloadOwnerPublicKey,
}

impl std::fmt::Debug for WorkloadOwnerPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadOwnerPrivateKey")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl WorkloadOwnerPrivateKey {
    /// Generates a new P-384 key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, OwnerKeyError> {
        Self::from_signing_key(p384::ecdsa::SigningKey::random(rng))
    }

    fn from_signing_key(signing_key: p384::ecdsa::SigningKey) -> Result<Self, OwnerKeyError> {
        // The PKIX encoding Go's `x509.MarshalPKIXPublicKey` produces: named curve, uncompressed
        // point.
        let point = signing_key.verifying_key().to_encoded_point(false);
        let encoding_error = |source: der::Error| OwnerKeyError::Encoding {
            structure: "PKIX SubjectPublicKeyInfo",
            source,
        };
        let spki = spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from(&SECP384R1)),
            },
            subject_public_key: BitStringRef::from_bytes(point.as_bytes())
                .map_err(encoding_error)?,
        }
        .to_der()
        .map_err(encoding_error)?;
        let public_key = WorkloadOwnerPublicKey::from_pkix_der(&spki)?;
        Ok(Self {
            signing_key,
            public_key,
        })
    }

    /// Parses a PEM `EC PRIVATE KEY` (SEC1, what upstream writes) or `PRIVATE KEY` (PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self, OwnerKeyError> {
        let (label, der) = decode_pem(pem)?;
        match label.as_str() {
            PEM_LABEL_SEC1 => Self::from_sec1_der(&der),
            PEM_LABEL_PKCS8 => Self::from_pkcs8_der(&der),
            _ => Err(OwnerKeyError::UnexpectedPemLabel {
                expected: "`EC PRIVATE KEY` or `PRIVATE KEY`",
                found: label,
            }),
        }
    }

    /// Parses a SEC1 `ECPrivateKey` DER on P-384 (the curve parameters, when present, must name
    /// P-384; the public key, when present, must match the scalar).
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        Self::from_sec1(der, None)
    }

    /// Parses a PKCS#8 `PrivateKeyInfo` DER holding a P-384 EC key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        let info =
            pkcs8::PrivateKeyInfo::from_der(der).map_err(|source| OwnerKeyError::MalformedDer {
                structure: "PKCS#8 PrivateKeyInfo",
                source,
            })?;
        let curve = ec_curve_oid(&info.algorithm)?;
        Self::from_sec1(info.private_key, Some(curve))
    }

    fn from_sec1(der: &[u8], outer_curve: Option<ObjectIdentifier>) -> Result<Self, OwnerKeyError> {
        let sec1 =
            EcPrivateKeyDer::from_der(der).map_err(|source| OwnerKeyError::MalformedDer {
                structure: "SEC1 ECPrivateKey",
                source,
            })?;
        let curve = outer_curve
            .or(sec1.curve)
            .ok_or(OwnerKeyError::MissingCurve)?;
        // Both the PKCS#8 algorithm parameters and the SEC1 parameters, when present, must name
        // P-384.
        if let Some(other) = [Some(curve), sec1.curve]
            .into_iter()
            .flatten()
            .find(|oid| *oid != SECP384R1)
        {
            return Err(OwnerKeyError::UnsupportedCurve {
                expected: "P-384",
                found: other.to_string(),
            });
        }
        if sec1.private_key.len() != 48 {
            return Err(OwnerKeyError::InvalidEcPrivateKey {
                reason: "the P-384 scalar must be 48 bytes",
            });
        }
        let signing_key = p384::ecdsa::SigningKey::from_slice(sec1.private_key).map_err(|_| {
            OwnerKeyError::InvalidEcPrivateKey {
                reason: "the scalar is zero or not below the order",
            }
        })?;
        if let Some(public) = sec1.public_key {
            let derived = signing_key.verifying_key().to_encoded_point(false);
            if public.as_bytes() != Some(derived.as_bytes()) {
                return Err(OwnerKeyError::InvalidEcPrivateKey {
                    reason: "the embedded public key does not match the scalar",
                });
            }
        }
        Self::from_signing_key(signing_key)
    }

    /// The SEC1 `EC PRIVATE KEY` PEM that upstream writes to `workload-owner.pem` (named curve
    /// and public key included, LF line endings).
    pub fn to_sec1_pem(&self) -> Result<Zeroizing<String>, OwnerKeyError> {
        let scalar = Zeroizing::new(self.signing_key.to_bytes());
        let point = self.signing_key.verifying_key().to_encoded_point(false);
        let encoding_error = |source: der::Error| OwnerKeyError::Encoding {
            structure: "SEC1 ECPrivateKey",
            source,
        };
        let sec1 = EcPrivateKeyDer {
            private_key: AsRef::<[u8]>::as_ref(&*scalar),
            curve: Some(SECP384R1),
            public_key: Some(BitStringRef::from_bytes(point.as_bytes()).map_err(encoding_error)?),
        };
        let der = Zeroizing::new(sec1.to_der().map_err(encoding_error)?);
        let pem = der::pem::encode_string(PEM_LABEL_SEC1, der::pem::LineEnding::LF, &der)
            .map_err(|e| encoding_error(e.into()))?;
        Ok(Zeroizing::new(pem))
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> WorkloadOwnerPublicKey {
        self.public_key.clone()
    }

    /// Signs a transition for a detached update signature: ECDSA-P384 (deterministic, RFC 6979)
    /// over SHA-256 of the 64 lowercase hex characters of `next_transition_hash`, DER-encoded.
    /// Same as `openssl dgst -sha256 -sign key.pem blob` and upstream's `contrast sign`.
    pub fn sign_transition(
        &self,
        next_transition_hash: &[u8; 32],
    ) -> Result<Vec<u8>, OwnerKeyError> {
        let prehash = crate::sha256(transition_signing_blob(next_transition_hash).as_bytes());
        let signature: p384::ecdsa::Signature = self
            .signing_key
            .sign_prehash(&prehash)
            .map_err(|_| OwnerKeyError::SigningFailed)?;
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// Seed-share owner keys
// ---------------------------------------------------------------------------------------------

/// A seed-share owner's RSA public key, as listed in the manifest.
///
/// Keeps the exact PKCS#1 `RSAPublicKey` DER it was parsed from. Accepts 2048- to 8192-bit keys
/// with exponent 65537 only (upstream's default is RSA-4096; upstream itself accepts any key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SeedshareOwnerPublicKey {
    pkcs1_der: Vec<u8>,
    modulus_bits: usize,
}

impl std::fmt::Debug for SeedshareOwnerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedshareOwnerPublicKey")
            .field("modulus_bits", &self.modulus_bits)
            .field("digest", &hexstring::encode(self.digest()))
            .finish()
    }
}

/// [`OwnerKeyError::UnsupportedAlgorithm`] unless `oid` is rsaEncryption.
fn require_rsa_encryption(oid: ObjectIdentifier) -> Result<(), OwnerKeyError> {
    if oid == RSA_ENCRYPTION {
        Ok(())
    } else {
        Err(OwnerKeyError::UnsupportedAlgorithm {
            expected: "rsaEncryption (1.2.840.113549.1.1.1)",
            found: oid.to_string(),
        })
    }
}

/// The PKCS#1 `RSAPublicKey` DER inside an rsaEncryption PKIX `SubjectPublicKeyInfo`: what
/// upstream hashes to authorise a seed-share owner ([`authorize_recovery`]) and what a
/// manifest's `SeedshareOwnerPubKeys` entry hex-encodes. Only the structure is checked here (a
/// well-formed `RSAPublicKey`); size and exponent are [`SeedshareOwnerPublicKey::from_pkcs1_der`]'s.
///
/// # Errors
/// [`OwnerKeyError::MalformedDer`] if `spki_der` is not a SubjectPublicKeyInfo or its key is not
/// a PKCS#1 `RSAPublicKey`; [`OwnerKeyError::UnsupportedAlgorithm`] (naming the OID found) for
/// any other key algorithm; [`OwnerKeyError::RsaKeyRejected`] if the key's BIT STRING has unused
/// bits.
pub fn rsa_pkcs1_from_spki(spki_der: &[u8]) -> Result<Vec<u8>, OwnerKeyError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|source| {
        OwnerKeyError::MalformedDer {
            structure: "PKIX SubjectPublicKeyInfo",
            source,
        }
    })?;
    require_rsa_encryption(info.algorithm.oid)?;
    let key = info
        .subject_public_key
        .as_bytes()
        .ok_or(OwnerKeyError::RsaKeyRejected {
            reason: "the BIT STRING has unused bits",
        })?;
    // Only a well-formed RSAPublicKey is handed on to be hashed and compared.
    pkcs1::RsaPublicKey::from_der(key).map_err(|source| OwnerKeyError::MalformedDer {
        structure: "PKCS#1 RSAPublicKey",
        source,
    })?;
    Ok(key.to_vec())
}

impl SeedshareOwnerPublicKey {
    /// Parses an rsaEncryption PKIX `SubjectPublicKeyInfo` DER ([`rsa_pkcs1_from_spki`]) and
    /// checks size and exponent as [`SeedshareOwnerPublicKey::from_pkcs1_der`] does.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        Self::from_pkcs1_der(&rsa_pkcs1_from_spki(der)?)
    }

    /// What a user may hand over as a seed-share owner's key: an `RSA PUBLIC KEY` (PKCS#1) or
    /// `PUBLIC KEY` (PKIX) PEM, or a private key PEM ([`SeedshareOwnerPrivateKey::from_pem`])
    /// whose public key is taken; size and exponent checked as
    /// [`SeedshareOwnerPublicKey::from_pkcs1_der`] does.
    pub fn from_public_or_private_pem(pem: &str) -> Result<Self, OwnerKeyError> {
        if let Ok((label, der)) = decode_pem(pem) {
            match label.as_str() {
                PEM_LABEL_PKCS1_PUBLIC => return Self::from_pkcs1_der(&der),
                PEM_LABEL_SPKI => return Self::from_spki_der(&der),
                _ => {}
            }
        }
        SeedshareOwnerPrivateKey::from_pem(pem).map(|key| key.public_key())
    }

    /// Parses a PKCS#1 `RSAPublicKey` DER and checks size and exponent.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        let key = match pkcs1::RsaPublicKey::from_der(der) {
            Ok(key) => key,
            Err(source) => {
                // Say so when the caller handed over the other common encoding.
                if let Ok(spki) = spki::SubjectPublicKeyInfoRef::from_der(der) {
                    return Err(OwnerKeyError::SpkiInsteadOfPkcs1 {
                        algorithm: spki.algorithm.oid.to_string(),
                    });
                }
                return Err(OwnerKeyError::MalformedDer {
                    structure: "PKCS#1 RSAPublicKey",
                    source,
                });
            }
        };
        let modulus_bits = unsigned_bit_length(key.modulus);
        if modulus_bits < MIN_RSA_MODULUS_BITS {
            return Err(OwnerKeyError::RsaKeyTooSmall {
                bits: modulus_bits,
                minimum: MIN_RSA_MODULUS_BITS,
            });
        }
        if modulus_bits > MAX_RSA_MODULUS_BITS {
            return Err(OwnerKeyError::RsaKeyTooLarge {
                bits: modulus_bits,
                maximum: MAX_RSA_MODULUS_BITS,
            });
        }
        if key.public_exponent.as_bytes() != RSA_EXPONENT_65537 {
            return Err(OwnerKeyError::UnsupportedRsaExponent {
                exponent_hex: hexstring::encode(key.public_exponent.as_bytes()),
            });
        }
        let parsed = Self {
            pkcs1_der: der.to_vec(),
            modulus_bits,
        };
        // Let aws-lc check the rest now rather than at encryption time.
        parsed.to_aws_lc()?;
        Ok(parsed)
    }

    /// Parses a `SeedshareOwnerPubKeys` manifest entry (hex of the PKCS#1 DER).
    pub fn from_hex(hex: &str) -> Result<Self, OwnerKeyError> {
        Self::from_pkcs1_der(&hexstring::decode(hex)?)
    }

    /// The exact PKCS#1 `RSAPublicKey` DER.
    #[must_use]
    pub fn pkcs1_der(&self) -> &[u8] {
        &self.pkcs1_der
    }

    /// The `SeedshareOwnerPubKeys` entry: lowercase hex of the PKCS#1 DER.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hexstring::encode(&self.pkcs1_der)
    }

    /// SHA-256 of the PKCS#1 DER: what recovery authorisation compares.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        crate::sha256(&self.pkcs1_der)
    }

    /// Length of the modulus in bits.
    #[must_use]
    pub fn modulus_bits(&self) -> usize {
        self.modulus_bits
    }

    /// The key wrapped into a PKIX `SubjectPublicKeyInfo` (algorithm `rsaEncryption`, NULL
    /// parameters), as aws-lc's `PublicEncryptingKey::from_der` takes it.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, OwnerKeyError> {
        let encoding_error = |source: der::Error| OwnerKeyError::Encoding {
            structure: "PKIX SubjectPublicKeyInfo",
            source,
        };
        spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: RSA_ENCRYPTION,
                parameters: Some(AnyRef::NULL),
            },
            subject_public_key: BitStringRef::from_bytes(&self.pkcs1_der)
                .map_err(encoding_error)?,
        }
        .to_der()
        .map_err(encoding_error)
    }

    /// The key as aws-lc's RSA encryption key.
    pub(crate) fn to_aws_lc(&self) -> Result<aws_lc_rs::rsa::PublicEncryptingKey, OwnerKeyError> {
        aws_lc_rs::rsa::PublicEncryptingKey::from_der(&self.to_spki_der()?).map_err(|e| {
            OwnerKeyError::RsaKeyRejected {
                reason: e.description_(),
            }
        })
    }
}

/// Bit length of a DER unsigned integer (leading zero bytes are already stripped).
fn unsigned_bit_length(value: UintRef<'_>) -> usize {
    let bytes = value.as_bytes();
    match bytes.first() {
        None => 0,
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
    }
}

/// A seed-share owner's RSA private key. Zeroized on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct SeedshareOwnerPrivateKey {
    /// PKCS#8 v1 `PrivateKeyInfo`, what aws-lc's decrypting key is loaded from.
    pkcs8_der: Zeroizing<Vec<u8>>,
    public_key: SeedshareOwnerPublicKey,
}

impl std::fmt::Debug for SeedshareOwnerPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedshareOwnerPrivateKey")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl SeedshareOwnerPrivateKey {
    /// Parses a PEM `RSA PRIVATE KEY` (PKCS#1, upstream's `seedshare-owner.pem`) or
    /// `PRIVATE KEY` (PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self, OwnerKeyError> {
        let (label, der) = decode_pem(pem)?;
        match label.as_str() {
            PEM_LABEL_PKCS1 => Self::from_pkcs1_der(&der),
            PEM_LABEL_PKCS8 => Self::from_pkcs8_der(&der),
            _ => Err(OwnerKeyError::UnexpectedPemLabel {
                expected: "`RSA PRIVATE KEY` or `PRIVATE KEY`",
                found: label,
            }),
        }
    }

    /// Parses a PKCS#1 `RSAPrivateKey` DER.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        let key =
            pkcs1::RsaPrivateKey::from_der(der).map_err(|source| OwnerKeyError::MalformedDer {
                structure: "PKCS#1 RSAPrivateKey",
                source,
            })?;
        let public_der = key
            .public_key()
            .to_der()
            .map_err(|source| OwnerKeyError::Encoding {
                structure: "PKCS#1 RSAPublicKey",
                source,
            })?;
        let public_key = SeedshareOwnerPublicKey::from_pkcs1_der(&public_der)?;
        let pkcs8_der = pkcs8::PrivateKeyInfo::new(
            spki::AlgorithmIdentifierRef {
                oid: RSA_ENCRYPTION,
                parameters: Some(AnyRef::NULL),
            },
            der,
        )
        .to_der()
        .map(Zeroizing::new)
        .map_err(|source| OwnerKeyError::Encoding {
            structure: "PKCS#8 PrivateKeyInfo",
            source,
        })?;
        let parsed = Self {
            pkcs8_der,
            public_key,
        };
        parsed.to_aws_lc()?;
        Ok(parsed)
    }

    /// Parses a PKCS#8 `PrivateKeyInfo` DER holding an RSA key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, OwnerKeyError> {
        let info =
            pkcs8::PrivateKeyInfo::from_der(der).map_err(|source| OwnerKeyError::MalformedDer {
                structure: "PKCS#8 PrivateKeyInfo",
                source,
            })?;
        require_rsa_encryption(info.algorithm.oid)?;
        Self::from_pkcs1_der(info.private_key)
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> SeedshareOwnerPublicKey {
        self.public_key.clone()
    }

    /// The key as aws-lc's RSA decryption key.
    pub(crate) fn to_aws_lc(&self) -> Result<aws_lc_rs::rsa::PrivateDecryptingKey, OwnerKeyError> {
        aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&self.pkcs8_der).map_err(|e| {
            OwnerKeyError::RsaKeyRejected {
                reason: e.description_(),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Authorisation rules
// ---------------------------------------------------------------------------------------------

/// The transition a workload owner signs: `SHA-256(new_manifest_hash ‖ previous_transition_hash)`,
/// where `new_manifest_hash` is SHA-256 of the exact manifest bytes and
/// `previous_transition_hash` is the Coordinator's latest transition hash (32 zero bytes before
/// the first manifest). This is the hash of the [`crate::history::Transition`] the update
/// will store.
#[must_use]
pub fn next_transition_hash(
    new_manifest_hash: &[u8; 32],
    previous_transition_hash: &[u8; 32],
) -> [u8; 32] {
    crate::history::Transition {
        manifest_hash: *new_manifest_hash,
        previous_transition_hash: *previous_transition_hash,
    }
    .hash()
}

/// The bytes a workload owner actually signs: the 64 lowercase hex characters of the next
/// transition hash, without a newline (what `contrast sign --prepare` writes).
#[must_use]
pub fn transition_signing_blob(next_transition_hash: &[u8; 32]) -> String {
    hexstring::encode(next_transition_hash)
}

/// Authorises a manifest update by the caller's (TLS client) key: its PKIX DER must be listed
/// in `WorkloadOwnerPubKeys`, or its SHA-256 in the old-schema `WorkloadOwnerKeyDigests`, of
/// the **current** manifest. Entries are hex-decoded and compared as bytes.
pub fn authorize_update_by_key(
    current_pub_keys: Option<&[String]>,
    current_key_digests: Option<&[String]>,
    caller: &WorkloadOwnerPublicKey,
) -> Result<(), AuthorizationError> {
    let pub_keys = current_pub_keys.unwrap_or_default();
    let key_digests = current_key_digests.unwrap_or_default();
    if pub_keys.is_empty() && key_digests.is_empty() {
        return Err(AuthorizationError::UpdatesDisabled);
    }
    let caller_digest = caller.digest();
    let listed_key = pub_keys
        .iter()
        .any(|entry| hexstring::decode(entry).is_ok_and(|der| der == caller.pkix_der()));
    let listed_digest = key_digests
        .iter()
        .any(|entry| hexstring::decode(entry).is_ok_and(|digest| digest == caller_digest));
    if listed_key || listed_digest {
        Ok(())
    } else {
        Err(AuthorizationError::NotAnOwner {
            caller_digest: hexstring::encode(caller_digest),
        })
    }
}

/// Whether a detached update signature can authorise an update of a manifest whose
/// `WorkloadOwnerPubKeys` are `current_pub_keys`: only a listed public key can verify one (key
/// digests cannot). When it cannot, an update is decided by the caller's key alone, before its
/// request is read.
#[must_use]
pub fn signature_may_authorize(current_pub_keys: &[String]) -> bool {
    !current_pub_keys.is_empty()
}

/// Verifies a detached update signature (G3) against the current manifest's
/// `WorkloadOwnerPubKeys` and returns the index of the key that signed.
///
/// The signature must be DER ECDSA over SHA-256 of [`transition_signing_blob`]; P-384 and P-256
/// keys are supported.
pub fn verify_update_signature(
    current_pub_keys: &[String],
    next_transition_hash: &[u8; 32],
    signature_der: &[u8],
) -> Result<usize, AuthorizationError> {
    if !signature_may_authorize(current_pub_keys) {
        return Err(AuthorizationError::UpdatesDisabled);
    }
    check_ecdsa_signature_der(signature_der).map_err(|e| {
        AuthorizationError::MalformedSignature {
            reason: e.to_string(),
        }
    })?;
    let blob = transition_signing_blob(next_transition_hash);
    current_pub_keys
        .iter()
        .position(|entry| {
            WorkloadOwnerPublicKey::from_hex(entry)
                .is_ok_and(|key| key.verifies(blob.as_bytes(), signature_der))
        })
        .ok_or(AuthorizationError::BadSignature {
            keys_tried: current_pub_keys.len(),
        })
}

/// Checks that `signature` is exactly `SEQUENCE { r INTEGER, s INTEGER }` with non-negative
/// integers, so that malformed input is told apart from a signature that does not verify.
fn check_ecdsa_signature_der(signature: &[u8]) -> der::Result<()> {
    let mut reader = SliceReader::new(signature)?;
    reader.sequence(|seq| {
        UintRef::decode(seq)?;
        UintRef::decode(seq)?;
        Ok(())
    })?;
    reader.finish(())
}

/// Authorises a recovery: SHA-256 of the caller's PKCS#1 `RSAPublicKey` DER must equal SHA-256
/// of one hex-decoded `SeedshareOwnerPubKeys` entry. Returns the index of that entry.
pub fn authorize_recovery(
    seedshare_owner_pub_keys: &[String],
    caller_pkcs1_der: &[u8],
) -> Result<usize, AuthorizationError> {
    if seedshare_owner_pub_keys.is_empty() {
        return Err(AuthorizationError::NoSeedshareOwners);
    }
    let caller_digest = crate::sha256(caller_pkcs1_der);
    seedshare_owner_pub_keys
        .iter()
        .position(|entry| {
            hexstring::decode(entry).is_ok_and(|der| crate::sha256(&der) == caller_digest)
        })
        .ok_or_else(|| AuthorizationError::RecoveryKeyNotListed {
            caller_digest: hexstring::encode(caller_digest),
        })
}

/// Rejects a new manifest whose `SeedshareOwnerPubKeys` differ from the current one's. As
/// upstream, the lists are compared element-wise as strings, in order; absent and empty are the
/// same.
pub fn check_seedshare_owners_unchanged(
    current: Option<&[String]>,
    new: Option<&[String]>,
) -> Result<(), AuthorizationError> {
    let current = current.unwrap_or_default();
    let new = new.unwrap_or_default();
    if current == new {
        return Ok(());
    }
    let first_difference = current
        .iter()
        .zip(new)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.len().min(new.len()));
    Err(AuthorizationError::SeedshareOwnersChanged {
        current_len: current.len(),
        new_len: new.len(),
        first_difference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_bit_length_counts_from_the_top_bit() {
        let cases: [(&[u8], usize); 4] = [
            (&[0x01], 1),
            (&[0x7f], 7),
            (&[0x01, 0x00, 0x01], 17),
            (&[0x80, 0x00], 16),
        ];
        for (bytes, bits) in cases {
            let value = UintRef::new(bytes).unwrap();
            assert_eq!(unsigned_bit_length(value), bits, "{bytes:02x?}");
        }
    }

    #[test]
    fn ecdsa_signature_structure_check() {
        // SEQUENCE { INTEGER 1, INTEGER 2 }
        assert!(
            check_ecdsa_signature_der(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]).is_ok()
        );
        // trailing byte
        assert!(
            check_ecdsa_signature_der(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02, 0x00])
                .is_err()
        );
        // negative r
        assert!(
            check_ecdsa_signature_der(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x02]).is_err()
        );
        // only one integer
        assert!(check_ecdsa_signature_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(check_ecdsa_signature_der(&[]).is_err());
    }

    #[test]
    fn generated_key_round_trips_through_sec1_pem() {
        let mut rng = rand_core::OsRng;
        let key = WorkloadOwnerPrivateKey::generate(&mut rng).unwrap();
        let pem = key.to_sec1_pem().unwrap();
        let parsed = WorkloadOwnerPrivateKey::from_pem(&pem).unwrap();
        assert_eq!(parsed.public_key(), key.public_key());
        assert_eq!(key.public_key().curve(), EcCurve::P384);
        let debug = format!("{key:?}");
        assert!(!debug.contains(&hexstring::encode(key.signing_key.to_bytes())));
    }
}
