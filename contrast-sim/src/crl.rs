//! The simulated ARK's certificate revocation list, in AMD's layout.
//!
//! AMD's KDS serves one CRL per product (`/vcek/v1/{product}/crl`), signed by the ARK with
//! RSASSA-PSS SHA-384 (parameters without the trailer field): version 2, the ARK's name as
//! issuer, thisUpdate and nextUpdate as UTCTime, the revoked certificates (serial and date, no
//! entry extensions), and two CRL extensions: the ARK's key identifier (AKI) and a CRL number.
//! A simulated CRL has exactly that shape, so the production verifier
//! (`contrast_attest::chain::verify_crl`) checks it unchanged.

use std::time::{SystemTime, UNIX_EPOCH};

use der::Encode;
use der::asn1::{BitString, GeneralizedTime, Uint, UtcTime};
use der::referenced::OwnedToRef;
use signature::Signer;
use x509_cert::Version;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::AsExtension;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, SubjectKeyIdentifier};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::SimError;
use super::certs::{amd_style_name, ark_common_name};
use super::pss::{PssSignature, RsaKey, Trailer, pss_algorithm_identifier};
use contrast_attest::Product;

/// One revoked certificate of a simulated CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The certificate's serial number, big-endian unsigned (e.g.
    /// [`SimulatedPlatform::ask_serial`](crate::SimulatedPlatform::ask_serial) or
    /// [`SimulatedPlatform::vcek_serial`](crate::SimulatedPlatform::vcek_serial)).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: SystemTime,
}

/// What a simulated CRL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlContents {
    /// The revoked certificates, in this order.
    pub revoked: Vec<Revocation>,
    /// thisUpdate: when the CRL was issued.
    pub this_update: SystemTime,
    /// nextUpdate: after this a verifier treats the CRL as stale.
    pub next_update: SystemTime,
    /// The CRL number (AMD's increase with every issue).
    pub number: u64,
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs())
}

fn x509_time(time: SystemTime, what: &'static str) -> Result<Time, SimError> {
    // UTCTime before 2050, GeneralizedTime after, as RFC 5280 and AMD's CRLs have it.
    UtcTime::from_system_time(time)
        .map(Time::UtcTime)
        .or_else(|_| GeneralizedTime::from_system_time(time).map(Time::GeneralTime))
        .map_err(|_| SimError::Time { what })
}

/// Builds and signs the CRL of `product`'s ARK.
pub(crate) fn build_crl(
    product: Product,
    ark: &RsaKey,
    contents: &CrlContents,
) -> Result<Vec<u8>, SimError> {
    if contents.next_update <= contents.this_update {
        return Err(SimError::CrlDates {
            this_update: unix(contents.this_update),
            next_update: unix(contents.next_update),
        });
    }
    let encoding = |what: &'static str| move |source| SimError::Encoding { what, source };
    let issuer = amd_style_name(&ark_common_name(product)).map_err(encoding("the ark name"))?;
    let algorithm = pss_algorithm_identifier(Trailer::Omitted)
        .map_err(encoding("the crl signature algorithm"))?;
    let revoked = contents
        .revoked
        .iter()
        .map(|revocation| {
            Ok(RevokedCert {
                serial_number: SerialNumber::new(&revocation.serial)
                    .map_err(encoding("a revoked serial number"))?,
                revocation_date: x509_time(revocation.revoked_at, "a revocation date")?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, SimError>>()?;
    let ski = SubjectKeyIdentifier::try_from(ark.spki().owned_to_ref())
        .map_err(encoding("the ark key identifier"))?;
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(ski.0),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number =
        CrlNumber(Uint::new(&contents.number.to_be_bytes()).map_err(encoding("the crl number"))?);
    let extensions = vec![
        aki.to_extension(&issuer, &[])
            .map_err(encoding("the crl authority key identifier"))?,
        number
            .to_extension(&issuer, &[])
            .map_err(encoding("the crl number"))?,
    ];
    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer,
        this_update: x509_time(contents.this_update, "the crl thisUpdate")?,
        next_update: Some(x509_time(contents.next_update, "the crl nextUpdate")?),
        // RFC 5280: absent, not empty, when nothing is revoked (as AMD's).
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(encoding("the crl"))?;
    let signature: PssSignature = ark
        .signer(Trailer::Omitted)
        .try_sign(&tbs_der)
        .map_err(|_| SimError::CrlSigning)?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(signature.as_bytes())
            .map_err(encoding("the crl signature"))?,
    };
    crl.to_der().map_err(encoding("the crl"))
}

/// The serial of a simulated VCEK: derived from the product, chip and TCB, so one chip's
/// certificate can be revoked alone. AMD's VCEKs all carry serial 0 (AMD revokes ASKs, not
/// VCEKs); the simulation departs from that so revocation can be shown per chip.
pub(crate) fn vcek_serial(product: Product, chip_id: &[u8; 64], tcb_bytes: &[u8; 8]) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA384,
        &[
            b"contrast-sim vcek serial".as_slice(),
            product.name().as_bytes(),
            chip_id,
            tcb_bytes,
        ]
        .concat(),
    );
    let mut serial = digest.as_ref()[..16].to_vec();
    // Positive, and a non-zero first byte: the DER INTEGER is exactly these 16 bytes.
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial
}
