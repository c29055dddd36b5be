//! The responder's self-signed certificate: building it, and parsing and checking a peer's.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm,
};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc4519, rfc5912};
use der::asn1::{GeneralizedTime, OctetString, PrintableStringRef, SetOfVec, UtcTime};
use der::{Any, DateTime, Decode, Encode};
use p384::pkcs8::{EncodePrivateKey, SecretDocument};
use rand_core::CryptoRngCore;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::error::AtlsError;
use super::{CERT_COMMON_NAME, CERT_VALIDITY_MARGIN, is_attestation_oid};

/// The responder's TLS key, held by aws-lc: a fresh P-256 key per handshake by default, or a
/// caller-supplied key (a workload owner's P-384 key, or a seed-share owner's RSA key for
/// `contrast recover`). aws-lc clears private keys when they are freed; a key leaves it only as
/// the zeroizing PKCS#8 document of [`AtlsKey::pkcs8_der`]. `Debug` shows only the curve or the
/// modulus size.
pub enum AtlsKey {
    /// ECDSA P-256: the certificate is signed ecdsa-with-SHA256, handshakes with
    /// `ecdsa_secp256r1_sha256`.
    P256(EcdsaKeyPair),
    /// ECDSA P-384: ecdsa-with-SHA384 and `ecdsa_secp384r1_sha384`.
    P384(EcdsaKeyPair),
    /// RSA (2048 to 8192 bits); the certificate is signed with sha256WithRSAEncryption
    /// (PKCS#1 v1.5), the TLS handshake with whatever RSA scheme the peer offers.
    Rsa(RsaKeyPair),
}

impl fmt::Debug for AtlsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::P256(_) => f.write_str("AtlsKey::P256(..)"),
            Self::P384(_) => f.write_str("AtlsKey::P384(..)"),
            Self::Rsa(k) => write!(
                f,
                "AtlsKey::Rsa({} bits, ..)",
                k.public_modulus_len().saturating_mul(8)
            ),
        }
    }
}

impl AtlsKey {
    /// A fresh P-256 key (what a responder uses per handshake), from aws-lc's generator, which
    /// draws on the operating system's RNG.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if aws-lc fails to generate a key.
    pub fn generate_p256() -> Result<Self, AtlsError> {
        EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING)
            .map(Self::P256)
            .map_err(build("a p-256 key"))
    }

    /// A fresh P-384 key, as [`AtlsKey::generate_p256`].
    ///
    /// # Errors
    /// [`AtlsError::Build`] if aws-lc fails to generate a key.
    pub fn generate_p384() -> Result<Self, AtlsError> {
        EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_ASN1_SIGNING)
            .map(Self::P384)
            .map_err(build("a p-384 key"))
    }

    /// A RustCrypto P-384 signing key (a workload owner's key) as an aTLS key.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if the key cannot be moved into aws-lc.
    pub fn from_p384(key: &p384::ecdsa::SigningKey) -> Result<Self, AtlsError> {
        let der = key.to_pkcs8_der().map_err(build("the p-384 key"))?;
        EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, der.as_bytes())
            .map(Self::P384)
            .map_err(build("the p-384 key"))
    }

    /// An RSA key from a PKCS#1 `RSAPrivateKey` DER (the body of a PEM `RSA PRIVATE KEY`, the
    /// format of upstream's `seedshare-owner.pem`).
    ///
    /// # Errors
    /// [`AtlsError::Build`] if aws-lc rejects the key (malformed, inconsistent, or outside
    /// 2048..=8192 bits).
    pub fn rsa_from_pkcs1_der(der: &[u8]) -> Result<Self, AtlsError> {
        RsaKeyPair::from_der(der)
            .map(Self::Rsa)
            .map_err(build("the rsa key from pkcs#1 der"))
    }

    /// An RSA key from a PKCS#8 `PrivateKeyInfo` DER (PEM `PRIVATE KEY`).
    ///
    /// # Errors
    /// [`AtlsError::Build`] if aws-lc rejects the key.
    pub fn rsa_from_pkcs8_der(der: &[u8]) -> Result<Self, AtlsError> {
        RsaKeyPair::from_pkcs8(der)
            .map(Self::Rsa)
            .map_err(build("the rsa key from pkcs#8 der"))
    }

    /// The SubjectPublicKeyInfo DER of the public key (the input to the report data).
    ///
    /// # Errors
    /// [`AtlsError::Build`] if encoding fails.
    pub fn spki_der(&self) -> Result<Vec<u8>, AtlsError> {
        let der: Result<PublicKeyX509Der<'static>, _> = match self {
            Self::P256(k) | Self::P384(k) => k.public_key().as_der(),
            Self::Rsa(k) => k.public_key().as_der(),
        };
        der.map(|d| d.as_ref().to_vec())
            .map_err(build("the public key"))
    }

    /// The private key as PKCS#8 DER (zeroized on drop), for a TLS stack that loads keys from
    /// bytes.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if encoding fails.
    pub fn pkcs8_der(&self) -> Result<SecretDocument, AtlsError> {
        match self {
            Self::P256(k) | Self::P384(k) => {
                let der = k.to_pkcs8v1().map_err(build("the private key"))?;
                SecretDocument::try_from(der.as_ref()).map_err(build("the private key"))
            }
            Self::Rsa(k) => {
                // aws-lc-rs's buffer zeroizes itself on drop, the SecretDocument too.
                let der: Pkcs8V1Der<'static> = k.as_der().map_err(build("the rsa private key"))?;
                SecretDocument::try_from(der.as_ref()).map_err(build("the rsa private key"))
            }
        }
    }

    /// The algorithm this key signs certificates with, as it is named in them: ecdsa-with-SHA256
    /// / -SHA384 without parameters (RFC 5758), sha256WithRSAEncryption with an explicit NULL
    /// (RFC 4055).
    fn certificate_signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match self {
            Self::P256(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            Self::P384(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_384,
                parameters: None,
            },
            Self::Rsa(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
        }
    }

    /// Signs `message`: ECDSA with the curve's hash (an ASN.1 DER signature), or RSA PKCS#1
    /// v1.5 with SHA-256. Used for certificates, and for TLS handshakes with the EC keys.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if aws-lc fails to sign.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AtlsError> {
        let rng = SystemRandom::new();
        match self {
            Self::P256(k) | Self::P384(k) => k
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(build("the signature")),
            Self::Rsa(k) => {
                let mut signature = vec![0u8; k.public_modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(build("the signature"))?;
                Ok(signature)
            }
        }
    }
}

fn build<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> AtlsError {
    move |e| AtlsError::Build {
        what,
        reason: e.to_string(),
    }
}

/// A name with one RDN `CN = <cn>`, the value a PrintableString as Go's `pkix.Name` encodes
/// these (both `Contrast` and standard base64 are printable).
///
/// # Errors
/// [`der::Error`] if `cn` is not printable.
pub(super) fn common_name(cn: &str) -> der::Result<Name> {
    let value = Any::from(PrintableStringRef::new(cn)?);
    let atv = AttributeTypeAndValue {
        oid: rfc4519::CN,
        value,
    };
    Ok(RdnSequence(vec![RelativeDistinguishedName(
        SetOfVec::try_from(vec![atv])?,
    )]))
}

/// The attestation extension: non-critical, its extnValue the raw document bytes.
struct AttestationExtension<'a> {
    oid: ObjectIdentifier,
    document: &'a [u8],
}

impl const_oid::AssociatedOid for AttestationExtension<'_> {
    // Required by `AsExtension`; unused, `to_extension` below takes the OID from the issuer.
    const OID: ObjectIdentifier = super::SNP_ATTESTATION_OID;
}

impl Encode for AttestationExtension<'_> {
    fn encoded_len(&self) -> der::Result<der::Length> {
        OctetString::new(self.document)?.encoded_len()
    }
    fn encode(&self, encoder: &mut impl der::Writer) -> der::Result<()> {
        OctetString::new(self.document)?.encode(encoder)
    }
}

impl AsExtension for AttestationExtension<'_> {
    fn critical(&self, _subject: &Name, _extensions: &[Extension]) -> bool {
        false
    }
    fn to_extension(&self, _subject: &Name, _extensions: &[Extension]) -> der::Result<Extension> {
        Ok(Extension {
            extn_id: self.oid,
            critical: false,
            extn_value: OctetString::new(self.document)?,
        })
    }
}

impl AtlsCertificate {
    /// Builds the responder certificate: self-signed with `key`, subject and issuer `CN=Contrast`,
    /// valid from `now − 2h` to `now + 2h`, a random positive 128-bit serial, a KeyUsage
    /// `digitalSignature` extension, and (if given) the attestation document in a non-critical
    /// extension under its OID.
    ///
    /// The TBS is assembled from x509-cert types, DER-encoded by `der` and signed by the key in
    /// aws-lc. The KeyUsage extension keeps the certificate X.509 v3 even without an attestation
    /// document (webpki, and so rustls's handshake-signature check, rejects v1).
    ///
    /// # Errors
    /// [`AtlsError::Build`].
    pub fn build(
        key: &AtlsKey,
        attestation: Option<(ObjectIdentifier, &[u8])>,
        now: Duration,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, AtlsError> {
        let mut serial = [0u8; 16];
        rng.fill_bytes(&mut serial);
        let serial = SerialNumber::new(&serial).map_err(build("the serial number"))?;
        let time = |t: Option<Duration>| -> Result<Time, AtlsError> {
            let t = t.ok_or(AtlsError::NoTime)?;
            let dt = DateTime::from_unix_duration(t).map_err(build("the validity"))?;
            rfc5280_time(dt)
        };
        let validity = Validity {
            not_before: time(now.checked_sub(CERT_VALIDITY_MARGIN))?,
            not_after: time(now.checked_add(CERT_VALIDITY_MARGIN))?,
        };
        let subject = common_name(CERT_COMMON_NAME).map_err(build("the subject"))?;
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.spki_der()?)
            .map_err(build("the public key"))?;
        let mut extensions = vec![
            KeyUsage(KeyUsages::DigitalSignature.into())
                .to_extension(&subject, &[])
                .map_err(build("the key usage extension"))?,
        ];
        if let Some((oid, document)) = attestation {
            extensions.push(
                AttestationExtension { oid, document }
                    .to_extension(&subject, &extensions)
                    .map_err(build("the attestation extension"))?,
            );
        }
        let signature_algorithm = key.certificate_signature_algorithm();
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: serial,
            signature: signature_algorithm.clone(),
            issuer: subject.clone(),
            validity,
            subject,
            subject_public_key_info: spki,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(extensions),
        };
        let tbs_der = tbs.to_der().map_err(build("the certificate"))?;
        let signature = key.sign(&tbs_der)?;
        let cert = Certificate {
            tbs_certificate: tbs,
            signature_algorithm,
            signature: der::asn1::BitString::from_bytes(&signature)
                .map_err(build("the certificate signature"))?,
        };
        cert.to_der().map_err(build("the certificate encoding"))
    }
}

/// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5).
fn rfc5280_time(date: DateTime) -> Result<Time, AtlsError> {
    if date.year() < 2050 {
        UtcTime::from_date_time(date)
            .map(Time::UtcTime)
            .map_err(build("the validity"))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(date)))
    }
}

/// What aTLS needs from a peer's certificate, after its self-signature and validity checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AtlsCertificate {
    /// SubjectPublicKeyInfo DER (the input to the report data).
    pub spki_der: Vec<u8>,
    /// notBefore, seconds since the epoch.
    pub not_before: u64,
    /// notAfter, seconds since the epoch.
    pub not_after: u64,
    /// The attestation extension: its OID and raw value. `None` if the certificate has none.
    pub attestation: Option<(ObjectIdentifier, Vec<u8>)>,
}

impl AtlsCertificate {
    /// Parses a peer's aTLS certificate: DER X.509, self-issued, its signature verified with its
    /// own key, no unhandled critical extension, at most one attestation extension (one of
    /// upstream's attestation arc `1.3.9901.2`). Validity is *not* checked here (see [`Self::check_validity`]), so
    /// this is the whole parse a fuzzer can reach.
    ///
    /// # Errors
    /// [`AtlsError::CertificateParse`], [`AtlsError::NotSelfIssued`],
    /// [`AtlsError::SignatureAlgorithmMismatch`], [`AtlsError::UnsupportedSignature`],
    /// [`AtlsError::BadSelfSignature`], [`AtlsError::UnhandledCriticalExtension`],
    /// [`AtlsError::MultipleAttestationExtensions`].
    pub fn parse(der: &[u8]) -> Result<Self, AtlsError> {
        let cert = Certificate::from_der(der).map_err(|e| AtlsError::CertificateParse {
            reason: e.to_string(),
        })?;
        let tbs = &cert.tbs_certificate;
        if tbs.issuer != tbs.subject {
            return Err(AtlsError::NotSelfIssued {
                issuer: tbs.issuer.to_string(),
                subject: tbs.subject.to_string(),
            });
        }
        if cert.signature_algorithm != tbs.signature {
            return Err(AtlsError::SignatureAlgorithmMismatch {
                outer: cert.signature_algorithm.oid.to_string(),
                inner: tbs.signature.oid.to_string(),
            });
        }
        let spki = &tbs.subject_public_key_info;
        let algorithm = verification_algorithm(&cert)?;
        let tbs_der =
            crate::chain::outer_first_tlv(der).map_err(|e| AtlsError::CertificateParse {
                reason: e.to_string(),
            })?;
        let signature = cert
            .signature
            .as_bytes()
            .ok_or(AtlsError::BadSelfSignature)?;
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(AtlsError::BadSelfSignature)?;
        UnparsedPublicKey::new(algorithm, public_key)
            .verify(tbs_der, signature)
            .map_err(|_| AtlsError::BadSelfSignature)?;

        let mut attestation = Vec::new();
        for ext in tbs.extensions.iter().flatten() {
            if is_attestation_oid(&ext.extn_id) {
                attestation.push((ext.extn_id, ext.extn_value.as_bytes().to_vec()));
            } else if ext.critical && !HANDLED_CRITICAL.contains(&ext.extn_id) {
                return Err(AtlsError::UnhandledCriticalExtension {
                    oid: ext.extn_id.to_string(),
                });
            }
        }
        if attestation.len() > 1 {
            return Err(AtlsError::MultipleAttestationExtensions {
                count: attestation.len(),
            });
        }
        Ok(AtlsCertificate {
            spki_der: spki.to_der().map_err(|e| AtlsError::CertificateParse {
                reason: e.to_string(),
            })?,
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            attestation: attestation.pop(),
        })
    }
}

/// Critical extensions whose presence does not change what aTLS checks.
const HANDLED_CRITICAL: [ObjectIdentifier; 4] = [
    rfc5912::ID_CE_BASIC_CONSTRAINTS,
    rfc5912::ID_CE_KEY_USAGE,
    rfc5912::ID_CE_EXT_KEY_USAGE,
    rfc5912::ID_CE_SUBJECT_ALT_NAME,
];

impl AtlsCertificate {
    /// `not_before ≤ now ≤ not_after`.
    ///
    /// # Errors
    /// [`AtlsError::NotYetValid`], [`AtlsError::Expired`].
    pub fn check_validity(&self, now_secs: u64) -> Result<(), AtlsError> {
        if now_secs < self.not_before {
            return Err(AtlsError::NotYetValid {
                not_before: self.not_before,
                now: now_secs,
            });
        }
        if now_secs > self.not_after {
            return Err(AtlsError::Expired {
                not_after: self.not_after,
                now: now_secs,
            });
        }
        Ok(())
    }
}

fn verification_algorithm(
    cert: &Certificate,
) -> Result<&'static dyn VerificationAlgorithm, AtlsError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let signature_algorithm = cert.signature_algorithm.oid;
    let unsupported = || AtlsError::UnsupportedSignature {
        signature_algorithm: signature_algorithm.to_string(),
        key_algorithm: match curve {
            Some(c) => format!("{} ({c})", spki.algorithm.oid),
            None => spki.algorithm.oid.to_string(),
        },
    };
    let key_oid = spki.algorithm.oid;
    let algorithm: &'static dyn VerificationAlgorithm = if key_oid == rfc5912::ID_EC_PUBLIC_KEY {
        match (signature_algorithm, curve) {
            (rfc5912::ECDSA_WITH_SHA_256, Some(rfc5912::SECP_256_R_1)) => {
                &sig::ECDSA_P256_SHA256_ASN1
            }
            (rfc5912::ECDSA_WITH_SHA_384, Some(rfc5912::SECP_256_R_1)) => {
                &sig::ECDSA_P256_SHA384_ASN1
            }
            (rfc5912::ECDSA_WITH_SHA_256, Some(rfc5912::SECP_384_R_1)) => {
                &sig::ECDSA_P384_SHA256_ASN1
            }
            (rfc5912::ECDSA_WITH_SHA_384, Some(rfc5912::SECP_384_R_1)) => {
                &sig::ECDSA_P384_SHA384_ASN1
            }
            _ => return Err(unsupported()),
        }
    } else if key_oid == rfc5912::RSA_ENCRYPTION {
        match signature_algorithm {
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION => &sig::RSA_PKCS1_2048_8192_SHA256,
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION => &sig::RSA_PKCS1_2048_8192_SHA384,
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION => &sig::RSA_PKCS1_2048_8192_SHA512,
            rfc5912::ID_RSASSA_PSS => {
                rsa_pss_algorithm(cert.signature_algorithm.parameters.as_ref())
                    .ok_or_else(unsupported)?
            }
            _ => return Err(unsupported()),
        }
    } else {
        return Err(unsupported());
    };
    Ok(algorithm)
}

/// The aws-lc-rs verifier for RSASSA-PSS parameters, if they are the profile aws-lc-rs checks:
/// SHA-256/384/512 with MGF1 over the same hash, salt length equal to the hash length, trailer
/// field 1 (what every common signer, AMD's ARK included, writes). `None` for anything else.
fn rsa_pss_algorithm(parameters: Option<&Any>) -> Option<&'static dyn VerificationAlgorithm> {
    let params = parameters?.decode_as::<pkcs1::RsaPssParams<'_>>().ok()?;
    let (algorithm, salt_len): (&'static dyn VerificationAlgorithm, u8) = match params.hash.oid {
        rfc5912::ID_SHA_256 => (&sig::RSA_PSS_2048_8192_SHA256, 32),
        rfc5912::ID_SHA_384 => (&sig::RSA_PSS_2048_8192_SHA384, 48),
        rfc5912::ID_SHA_512 => (&sig::RSA_PSS_2048_8192_SHA512, 64),
        _ => return None,
    };
    let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
    (params.mask_gen.oid == rfc5912::ID_MGF_1
        && mgf_hash == Some(params.hash.oid)
        && params.salt_len == salt_len)
        .then_some(algorithm)
}
