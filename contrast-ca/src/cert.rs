//! Certificate assembly shared by the CA and leaf certificates: names, validity, key
//! identifiers, the standard extensions as Go's `x509.CreateCertificate` writes them, and signing
//! with aws-lc-rs.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use der::asn1::{
    GeneralizedTime, OctetString, PrintableStringRef, SetOfVec, UtcTime, Utf8StringRef,
};
use der::{Any, DateTime, Encode};
use p384::ecdsa::SigningKey;
use rand_core::CryptoRngCore;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use crate::error::{CaError, encoding};

/// One hour: every certificate's `notBefore` is this far before `now` (clock skew).
pub(crate) const BACKDATE_SECONDS: u64 = 3600;

/// The subject key identifier Go ≥ 1.25 computes for CA certificates: the first 20 bytes of
/// SHA-256 over the subjectPublicKey BIT STRING contents (the uncompressed point).
pub(crate) fn subject_key_identifier(key: &SigningKey) -> [u8; 20] {
    let point = key.verifying_key().to_encoded_point(false);
    let digest = contrast_core::sha256(point.as_bytes());
    let mut skid = [0u8; 20];
    skid.iter_mut()
        .zip(digest.iter())
        .for_each(|(o, d)| *o = *d);
    skid
}

/// Whether Go's `encoding/asn1` writes `s` as a PrintableString (its default for Go strings);
/// otherwise it writes a UTF8String. `*` and `&` are excluded, as in Go's marshaller.
fn is_go_printable(s: &str) -> bool {
    s.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    })
}

/// A name holding only a common name, string-typed as Go types it.
pub(crate) fn common_name(cn: &str) -> Result<Name, CaError> {
    let err = encoding("common name");
    let value = if is_go_printable(cn) {
        Any::encode_from(&PrintableStringRef::new(cn).map_err(&err)?)
    } else {
        Any::encode_from(&Utf8StringRef::new(cn).map_err(&err)?)
    }
    .map_err(&err)?;
    let atv = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::CN,
        value,
    };
    let rdn = SetOfVec::try_from(vec![atv]).map_err(&err)?;
    Ok(RdnSequence(vec![RelativeDistinguishedName(rdn)]))
}

/// The X.509 time for `seconds` after the epoch: UTCTime before 2050, GeneralizedTime from 2050
/// (RFC 5280, as Go).
fn x509_time(bound: &'static str, date: DateTime) -> Result<Time, CaError> {
    let err = |_| CaError::TimeOutOfRange {
        bound,
        seconds: date.unix_duration().as_secs(),
    };
    if date.year() < 2050 {
        UtcTime::from_date_time(date)
            .map(Time::UtcTime)
            .map_err(err)
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(date)))
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// `date` plus `years` calendar years, normalised like Go's `time.AddDate` (29 February into a
/// non-leap year becomes 1 March).
fn add_years(bound: &'static str, date: DateTime, years: u16) -> Result<DateTime, CaError> {
    let err = || CaError::TimeOutOfRange {
        bound,
        seconds: date.unix_duration().as_secs(),
    };
    let year = date.year().checked_add(years).ok_or_else(err)?;
    let (month, day) = if date.month() == 2 && date.day() == 29 && !is_leap(year) {
        (3, 1)
    } else {
        (date.month(), date.day())
    };
    DateTime::new(
        year,
        month,
        day,
        date.hour(),
        date.minutes(),
        date.seconds(),
    )
    .map_err(|_| err())
}

/// `[now − 1 h, now + years]` with Go's calendar arithmetic for the upper bound.
pub(crate) fn validity(now_seconds: u64, years: u16) -> Result<Validity, CaError> {
    let not_before_seconds =
        now_seconds
            .checked_sub(BACKDATE_SECONDS)
            .ok_or(CaError::TimeOutOfRange {
                bound: "notBefore",
                seconds: now_seconds,
            })?;
    let not_before = DateTime::from_unix_duration(Duration::from_secs(not_before_seconds))
        .map_err(|_| CaError::TimeOutOfRange {
            bound: "notBefore",
            seconds: not_before_seconds,
        })?;
    let now = DateTime::from_unix_duration(Duration::from_secs(now_seconds)).map_err(|_| {
        CaError::TimeOutOfRange {
            bound: "notAfter",
            seconds: now_seconds,
        }
    })?;
    let not_after = add_years("notAfter", now, years)?;
    Ok(Validity {
        not_before: x509_time("notBefore", not_before)?,
        not_after: x509_time("notAfter", not_after)?,
    })
}

/// A serial number uniform in `[0, 2^128)`, as a positive DER INTEGER.
pub(crate) fn random_serial(rng: &mut impl CryptoRngCore) -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    SerialNumber::new(&bytes).map_err(encoding("serial number"))
}

/// Encodes a standard extension with the criticality Go gives it.
pub(crate) fn extension<E: AsExtension>(
    value: &E,
    critical: bool,
    subject: &Name,
    structure: &'static str,
) -> Result<Extension, CaError> {
    let mut ext = value
        .to_extension(subject, &[])
        .map_err(encoding(structure))?;
    ext.critical = critical;
    Ok(ext)
}

/// KeyUsage (critical, as Go).
pub(crate) fn key_usage(usages: KeyUsage, subject: &Name) -> Result<Extension, CaError> {
    extension(&usages, true, subject, "key usage")
}

/// KeyUsage DigitalSignature + KeyCertSign, the CA certificates' usage.
pub(crate) fn ca_key_usage() -> KeyUsage {
    KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign)
}

/// BasicConstraints (critical, as Go; no path length).
pub(crate) fn basic_constraints(ca: bool, subject: &Name) -> Result<Extension, CaError> {
    let value = BasicConstraints {
        ca,
        path_len_constraint: None,
    };
    extension(&value, true, subject, "basic constraints")
}

/// SubjectKeyIdentifier (non-critical).
pub(crate) fn subject_key_id(skid: &[u8; 20], subject: &Name) -> Result<Extension, CaError> {
    let value = SubjectKeyIdentifier(
        OctetString::new(skid.to_vec()).map_err(encoding("subject key identifier"))?,
    );
    extension(&value, false, subject, "subject key identifier")
}

/// AuthorityKeyIdentifier with only the key identifier (non-critical).
pub(crate) fn authority_key_id(
    issuer_skid: &[u8; 20],
    subject: &Name,
) -> Result<Extension, CaError> {
    let value = AuthorityKeyIdentifier {
        key_identifier: Some(
            OctetString::new(issuer_skid.to_vec()).map_err(encoding("authority key identifier"))?,
        ),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    extension(&value, false, subject, "authority key identifier")
}

/// Rejects a second extension with an OID already present.
pub(crate) fn check_unique(extensions: &[Extension]) -> Result<(), CaError> {
    let mut seen = BTreeSet::new();
    for ext in extensions {
        if !seen.insert(ext.extn_id) {
            return Err(CaError::DuplicateExtension { oid: ext.extn_id });
        }
    }
    Ok(())
}

/// What goes into one certificate before signing.
pub(crate) struct CertificateTemplate {
    pub(crate) serial_number: SerialNumber,
    pub(crate) issuer: Name,
    pub(crate) validity: Validity,
    pub(crate) subject: Name,
    pub(crate) subject_public_key_info: SubjectPublicKeyInfoOwned,
    pub(crate) extensions: Vec<Extension>,
}

/// An ECDSA P-384/SHA-384 certificate signer over aws-lc-rs, built once per key: mesh
/// certificates are signed on every workload start, and aws-lc-rs signs about four times faster
/// than the pure-Rust `p384` signer. The signature nonce comes from aws-lc's own DRBG
/// (aws-lc-rs takes no caller RNG); serial numbers still come from the caller's RNG.
pub(crate) struct CertSigner(EcdsaKeyPair);

impl CertSigner {
    /// The signer for `key` (the same scalar; aws-lc checks it against the public point).
    pub(crate) fn new(key: &SigningKey, certificate: &'static str) -> Result<Self, CaError> {
        let mut scalar = zeroize::Zeroizing::new([0u8; 48]);
        scalar.copy_from_slice(&key.to_bytes());
        let public = key.verifying_key().to_encoded_point(false);
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            scalar.as_slice(),
            public.as_bytes(),
        )
        .map(Self)
        .map_err(|_| CaError::Signing {
            certificate,
            reason: "aws-lc-rs rejected the P-384 key",
        })
    }
}

impl std::fmt::Debug for CertSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertSigner(P-384)")
    }
}

/// Signs `template` with `signer` (ecdsa-with-SHA384, no parameters, as Go writes it) and
/// returns the DER.
pub(crate) fn sign(
    template: CertificateTemplate,
    signer: &CertSigner,
    certificate: &'static str,
) -> Result<Vec<u8>, CaError> {
    check_unique(&template.extensions)?;
    let signature_algorithm = spki::AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_384,
        parameters: None,
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: template.serial_number,
        signature: signature_algorithm.clone(),
        issuer: template.issuer,
        validity: template.validity,
        subject: template.subject,
        subject_public_key_info: template.subject_public_key_info,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(template.extensions).filter(|e| !e.is_empty()),
    };
    let tbs_der = tbs.to_der().map_err(encoding("TBS certificate"))?;
    let signature =
        signer
            .0
            .sign(&SystemRandom::new(), &tbs_der)
            .map_err(|_| CaError::Signing {
                certificate,
                reason: "aws-lc-rs ECDSA signing failed",
            })?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm,
        signature: der::asn1::BitString::from_bytes(signature.as_ref())
            .map_err(encoding("signature"))?,
    };
    cert.to_der().map_err(encoding("certificate"))
}

/// PEM `CERTIFICATE` with LF line endings, as Go's `pem.EncodeToMemory`.
pub(crate) fn to_pem(der: &[u8]) -> Result<String, CaError> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).map_err(|e| {
        CaError::Encoding {
            structure: "certificate PEM",
            source: e.into(),
        }
    })
}

/// The SPKI of a P-384 verifying key (named curve, uncompressed point).
pub(crate) fn p384_spki(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).map_err(|e| CaError::Encoding {
        structure: "P-384 SubjectPublicKeyInfo",
        source: match e {
            spki::Error::Asn1(d) => d,
            _ => der::ErrorKind::Failed.into(),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_printable_set() {
        assert!(is_go_printable("system:coordinator:root"));
        assert!(is_go_printable("a-b.c d'(x)+,/=?"));
        for s in ["*", "a&b", "a_b", "é", "a@b"] {
            assert!(!is_go_printable(s), "{s}");
        }
    }

    #[test]
    fn add_years_normalises_february_29() {
        let date = DateTime::new(2024, 2, 29, 1, 2, 3).unwrap();
        assert_eq!(
            add_years("notAfter", date, 1).unwrap(),
            DateTime::new(2025, 3, 1, 1, 2, 3).unwrap()
        );
        assert_eq!(
            add_years("notAfter", date, 4).unwrap(),
            DateTime::new(2028, 2, 29, 1, 2, 3).unwrap()
        );
        let late = DateTime::new(9995, 1, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            add_years("notAfter", late, 10),
            Err(CaError::TimeOutOfRange {
                bound: "notAfter",
                ..
            })
        ));
    }

    #[test]
    fn serial_is_positive_and_at_most_128_bits() {
        struct Ones;
        impl rand_core::RngCore for Ones {
            fn next_u32(&mut self) -> u32 {
                u32::MAX
            }
            fn next_u64(&mut self) -> u64 {
                u64::MAX
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.fill(0xff);
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
                dest.fill(0xff);
                Ok(())
            }
        }
        impl rand_core::CryptoRng for Ones {}
        let serial = random_serial(&mut Ones).unwrap();
        // 2^128 − 1 needs a leading zero octet to stay positive.
        assert_eq!(serial.to_der().unwrap()[..4], [0x02, 0x11, 0x00, 0xff]);
    }
}
