//! RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48) signing over aws-lc-rs, shaped for the
//! `x509-cert` certificate builder, with AMD's AlgorithmIdentifier encoding.
//!
//! ```text
//! RSASSA-PSS-params ::= SEQUENCE {
//!     hashAlgorithm      [0] HashAlgorithm     DEFAULT sha1,
//!     maskGenAlgorithm   [1] MaskGenAlgorithm  DEFAULT mgf1SHA1,
//!     saltLength         [2] INTEGER           DEFAULT 20,
//!     trailerField       [3] TrailerField      DEFAULT trailerFieldBC }
//! ```
//!
//! AMD writes `trailerField 1` explicitly in its CA certificates (and in VCEKs/VLEKs issued until
//! 2023), although it is the DEFAULT and strict DER would omit it; VCEKs/VLEKs issued since late
//! 2024 omit it (the Genoa 2025, Turin 2024 and VLEK 2024 samples). `pkcs1`'s `RsaPssParams`
//! always omits it, hence the own parameter type.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{KeyPair as _, RSA_PSS_SHA384};
use der::asn1::{Any, BitString, ObjectIdentifier};
use der::{Decode, Document, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::SimError;

/// id-RSASSA-PSS (RFC 4055).
pub(crate) const ID_RSASSA_PSS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// id-mgf1 (RFC 4055).
pub(crate) const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// id-sha384 (RFC 4055 / NIST).
pub(crate) const ID_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
/// SHA-384 output length, the salt length AMD uses.
pub(crate) const SALT_LENGTH: u8 = 48;

/// Whether the PSS parameters spell out the DEFAULT trailer field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trailer {
    /// `[3] INTEGER 1` present (AMD CA certificates).
    Explicit,
    /// Omitted (VCEKs as AMD's KDS issues them now).
    Omitted,
}

#[derive(Clone, Debug, Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    salt_length: u8,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u8>,
}

/// The signature AlgorithmIdentifier AMD puts in its certificates.
pub(crate) fn pss_algorithm_identifier(trailer: Trailer) -> der::Result<AlgorithmIdentifierOwned> {
    let sha384 = AlgorithmIdentifierOwned {
        oid: ID_SHA384,
        parameters: Some(Any::null()),
    };
    let params = PssParams {
        hash_algorithm: sha384.clone(),
        mask_gen_algorithm: AlgorithmIdentifierOwned {
            oid: ID_MGF1,
            parameters: Some(Any::encode_from(&sha384)?),
        },
        salt_length: SALT_LENGTH,
        trailer_field: match trailer {
            Trailer::Explicit => Some(1),
            Trailer::Omitted => None,
        },
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ID_RSASSA_PSS,
        parameters: Some(Any::encode_from(&params)?),
    })
}

/// An RSA key (ARK or ASK) with its SubjectPublicKeyInfo.
pub(crate) struct RsaKey {
    key_pair: RsaKeyPair,
    spki: SubjectPublicKeyInfoOwned,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("modulus_bits", &(self.key_pair.public_modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    /// Wraps an aws-lc-rs key pair; `key` names it in errors.
    pub(crate) fn new(key_pair: RsaKeyPair, key: &'static str) -> Result<Self, SimError> {
        let spki_der = key_pair
            .public_key()
            .as_der()
            .map_err(|_| SimError::Key {
                key,
                action: "export the public part of",
            })?
            .as_ref()
            .to_vec();
        let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der).map_err(|source| {
            SimError::Encoding {
                what: "an rsa subject public key info",
                source,
            }
        })?;
        Ok(Self {
            key_pair,
            spki,
            spki_der,
        })
    }

    /// The SubjectPublicKeyInfo (rsaEncryption, as in AMD's certificates).
    pub(crate) fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    /// The SubjectPublicKeyInfo DER.
    pub(crate) fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The PKCS#8 v1 DER of the private key.
    pub(crate) fn pkcs8_der(&self, key: &'static str) -> Result<Vec<u8>, SimError> {
        Ok(self
            .key_pair
            .as_der()
            .map_err(|_| SimError::Key {
                key,
                action: "export",
            })?
            .as_ref()
            .to_vec())
    }

    /// A certificate signer with this key and the given parameter encoding.
    pub(crate) fn signer(&self, trailer: Trailer) -> PssSigner<'_> {
        PssSigner { key: self, trailer }
    }
}

/// Signs certificates with an [`RsaKey`] (RSASSA-PSS SHA-384, salt 48).
pub(crate) struct PssSigner<'k> {
    key: &'k RsaKey,
    trailer: Trailer,
}

/// The signer's public key as SubjectPublicKeyInfo DER (what the builder needs to know).
#[derive(Clone, Debug)]
pub(crate) struct SpkiDer(Vec<u8>);

impl spki::EncodePublicKey for SpkiDer {
    fn to_public_key_der(&self) -> spki::Result<Document> {
        Ok(Document::try_from(self.0.as_slice())?)
    }
}

/// A raw RSASSA-PSS signature (modulus length bytes).
pub(crate) struct PssSignature(Vec<u8>);

impl PssSignature {
    /// The signature bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl spki::SignatureBitStringEncoding for PssSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl signature::Keypair for PssSigner<'_> {
    type VerifyingKey = SpkiDer;

    fn verifying_key(&self) -> SpkiDer {
        SpkiDer(self.key.spki_der.clone())
    }
}

impl spki::DynSignatureAlgorithmIdentifier for PssSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(pss_algorithm_identifier(self.trailer)?)
    }
}

impl signature::Signer<PssSignature> for PssSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<PssSignature, signature::Error> {
        let mut out = vec![0; self.key.key_pair.public_modulus_len()];
        // aws-lc-rs ignores the RNG argument and salts from its own DRBG.
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key
            .key_pair
            .sign(&RSA_PSS_SHA384, &rng, msg, &mut out)
            .map_err(|_| signature::Error::new())?;
        Ok(PssSignature(out))
    }
}
