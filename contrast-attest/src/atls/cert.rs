//! The responder's self-signed certificate: building it, and parsing and checking a peer's.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc4519, rfc5912};
use der::asn1::{GeneralizedTime, OctetString, PrintableStringRef, SetOfVec};
use der::{Any, DateTime, Decode, Encode};
use p256::pkcs8::{EncodePrivateKey, SecretDocument};
use rand_core::CryptoRngCore;
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::error::AtlsError;
use super::{ATTESTATION_DOCUMENT_OIDS, CERT_COMMON_NAME, CERT_VALIDITY_MARGIN};

/// The responder's TLS key: fresh P-256 by default, or a caller-supplied key (a workload
/// owner's P-384 key). The scalar is zeroized on drop by the curve crates; `Debug` shows only
/// the curve.
pub enum AtlsKey {
    /// ECDSA P-256; the certificate is signed with ecdsa-with-SHA256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384; the certificate is signed with ecdsa-with-SHA384.
    P384(p384::ecdsa::SigningKey),
}

impl fmt::Debug for AtlsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256(_) => "AtlsKey::P256(..)",
            Self::P384(_) => "AtlsKey::P384(..)",
        })
    }
}

impl AtlsKey {
    /// A fresh P-256 key (what a responder uses per handshake).
    pub fn generate_p256(rng: &mut impl CryptoRngCore) -> Self {
        Self::P256(p256::ecdsa::SigningKey::random(rng))
    }

    /// A fresh P-384 key.
    pub fn generate_p384(rng: &mut impl CryptoRngCore) -> Self {
        Self::P384(p384::ecdsa::SigningKey::random(rng))
    }

    /// The SubjectPublicKeyInfo DER of the public key (the input to the report data).
    ///
    /// # Errors
    /// [`AtlsError::Build`] if encoding fails.
    pub fn spki_der(&self) -> Result<Vec<u8>, AtlsError> {
        let doc = match self {
            Self::P256(k) => k.verifying_key().to_public_key_der(),
            Self::P384(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(build("the public key"))?;
        Ok(doc.into_vec())
    }

    /// The private key as PKCS#8 DER (zeroized on drop), for the TLS stack.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if encoding fails.
    pub fn pkcs8_der(&self) -> Result<SecretDocument, AtlsError> {
        match self {
            Self::P256(k) => k.to_pkcs8_der(),
            Self::P384(k) => k.to_pkcs8_der(),
        }
        .map_err(build("the private key"))
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
pub fn common_name(cn: &str) -> der::Result<Name> {
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
    const OID: ObjectIdentifier = super::SNP_DOCUMENT_OID;
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

/// Builds the responder certificate: self-signed with `key`, subject and issuer `CN=Contrast`,
/// valid from `now − 2h` to `now + 2h`, a random positive 128-bit serial, a KeyUsage
/// `digitalSignature` extension, and (if given) the attestation document in a non-critical
/// extension under its OID.
///
/// The KeyUsage extension keeps the certificate X.509 v3 even without an attestation document
/// (the builder writes v1 for a certificate without extensions, which webpki, and so rustls's
/// handshake-signature check, rejects).
///
/// # Errors
/// [`AtlsError::Build`].
pub fn build_certificate(
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
        // The builder turns dates before 2050 into UTCTime, as RFC 5280 requires.
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    };
    let validity = Validity {
        not_before: time(now.checked_sub(CERT_VALIDITY_MARGIN))?,
        not_after: time(now.checked_add(CERT_VALIDITY_MARGIN))?,
    };
    let subject = common_name(CERT_COMMON_NAME).map_err(build("the subject"))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(&key.spki_der()?).map_err(build("the public key"))?;
    let profile = Profile::Manual { issuer: None };
    let cert = match key {
        AtlsKey::P256(k) => {
            let mut b = CertificateBuilder::new(profile, serial, validity, subject, spki, k)
                .map_err(build("the certificate"))?;
            b.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
                .map_err(build("the key usage extension"))?;
            if let Some((oid, document)) = attestation {
                b.add_extension(&AttestationExtension { oid, document })
                    .map_err(build("the attestation extension"))?;
            }
            b.build::<p256::ecdsa::DerSignature>()
        }
        AtlsKey::P384(k) => {
            let mut b = CertificateBuilder::new(profile, serial, validity, subject, spki, k)
                .map_err(build("the certificate"))?;
            b.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
                .map_err(build("the key usage extension"))?;
            if let Some((oid, document)) = attestation {
                b.add_extension(&AttestationExtension { oid, document })
                    .map_err(build("the attestation extension"))?;
            }
            b.build::<p384::ecdsa::DerSignature>()
        }
    }
    .map_err(build("the certificate signature"))?;
    cert.to_der().map_err(build("the certificate encoding"))
}

/// What aTLS needs from a peer's certificate, after its self-signature and validity checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Parses a peer's aTLS certificate: DER X.509, self-issued, its signature verified with its
/// own key, no unhandled critical extension, at most one attestation extension (one of
/// [`ATTESTATION_DOCUMENT_OIDS`]). Validity is *not* checked here (see [`check_validity`]), so
/// this is the whole parse a fuzzer can reach.
///
/// # Errors
/// [`AtlsError::CertificateParse`], [`AtlsError::NotSelfIssued`],
/// [`AtlsError::SignatureAlgorithmMismatch`], [`AtlsError::UnsupportedSignature`],
/// [`AtlsError::BadSelfSignature`], [`AtlsError::UnhandledCriticalExtension`],
/// [`AtlsError::MultipleAttestationExtensions`].
pub fn parse_certificate(der: &[u8]) -> Result<AtlsCertificate, AtlsError> {
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
    let tbs_der = tbs.to_der().map_err(|e| AtlsError::CertificateParse {
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
        .verify(&tbs_der, signature)
        .map_err(|_| AtlsError::BadSelfSignature)?;

    let mut attestation = Vec::new();
    for ext in tbs.extensions.iter().flatten() {
        if ATTESTATION_DOCUMENT_OIDS.contains(&ext.extn_id) {
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

/// Critical extensions whose presence does not change what aTLS checks.
const HANDLED_CRITICAL: [ObjectIdentifier; 4] = [
    rfc5912::ID_CE_BASIC_CONSTRAINTS,
    rfc5912::ID_CE_KEY_USAGE,
    rfc5912::ID_CE_EXT_KEY_USAGE,
    rfc5912::ID_CE_SUBJECT_ALT_NAME,
];

/// `not_before ≤ now ≤ not_after`.
///
/// # Errors
/// [`AtlsError::NotYetValid`], [`AtlsError::Expired`].
pub fn check_validity(cert: &AtlsCertificate, now_secs: u64) -> Result<(), AtlsError> {
    if now_secs < cert.not_before {
        return Err(AtlsError::NotYetValid {
            not_before: cert.not_before,
            now: now_secs,
        });
    }
    if now_secs > cert.not_after {
        return Err(AtlsError::Expired {
            not_after: cert.not_after,
            now: now_secs,
        });
    }
    Ok(())
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
            _ => return Err(unsupported()),
        }
    } else {
        return Err(unsupported());
    };
    Ok(algorithm)
}
