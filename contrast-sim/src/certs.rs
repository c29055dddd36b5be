//! Building the simulated ARK, ASK and VCEK certificates with the `x509-cert` builder.

use std::time::Duration;

use der::asn1::{
    Any, GeneralizedTime, Ia5String, ObjectIdentifier, PrintableStringRef, SetOfVec, Utf8StringRef,
};
use der::referenced::OwnedToRef;
use der::{DateTime, Encode, Length, Writer};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::crl::vcek_serial;
use super::pss::{PssSignature, RsaKey, Trailer};
use super::{SIMULATED_ORGANIZATION, SimError};
use contrast_attest::chain::AmdExtension;
use contrast_attest::{Product, TcbVersion};

/// Validity of the ARK and ASK, as AMD's.
pub(crate) const CA_VALIDITY_YEARS: u16 = 25;
/// Validity of a VCEK, as AMD's.
pub(crate) const VCEK_VALIDITY_YEARS: u16 = 7;

const ID_AT_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const ID_AT_C: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
const ID_AT_L: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.7");
const ID_AT_ST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.8");
const ID_AT_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const ID_AT_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// AMD's serial numbers: ARK, ASK per product.
pub(crate) fn serials(product: Product) -> (u32, u32) {
    match product {
        Product::Milan => (0x10000, 0x10001),
        Product::Genoa => (0x20000, 0x20002),
        Product::Turin => (0x30000, 0x30001),
    }
}

/// Common name of the simulated ARK.
pub(crate) fn ark_common_name(product: Product) -> String {
    format!("SIM-ARK-{}", product.name())
}

/// Common name of the simulated ASK.
pub(crate) fn ask_common_name(product: Product) -> String {
    format!("SIM-SEV-{}", product.name())
}

/// Common name of every VCEK (AMD's: it tells a VCEK from a VLEK).
pub(crate) const VCEK_COMMON_NAME: &str = "SEV-VCEK";

/// The VCEK productName extension value, as on AMD's VCEKs.
pub(crate) fn vcek_product_name(product: Product) -> &'static str {
    match product {
        Product::Milan => "Milan-B0",
        Product::Genoa => "Genoa",
        Product::Turin => "Turin",
    }
}

fn crl_url(product: Product) -> String {
    format!(
        "https://kds.simulated-snp.invalid/vcek/v1/{}/crl",
        product.name()
    )
}

fn encoding(what: &'static str) -> impl FnOnce(der::Error) -> SimError {
    move |source| SimError::Encoding { what, source }
}

fn certificate(certificate: &'static str) -> impl FnOnce(x509_cert::builder::Error) -> SimError {
    move |source| SimError::Certificate {
        certificate,
        source,
    }
}

/// An AMD-style distinguished name: OU, C, L, ST, O, CN, one attribute per RDN, UTF8String
/// except the PrintableString country.
pub(crate) fn amd_style_name(common_name: &str) -> der::Result<Name> {
    let attributes = [
        (
            ID_AT_OU,
            Any::encode_from(&Utf8StringRef::new("Engineering")?)?,
        ),
        (ID_AT_C, Any::encode_from(&PrintableStringRef::new("US")?)?),
        (
            ID_AT_L,
            Any::encode_from(&Utf8StringRef::new("Santa Clara")?)?,
        ),
        (ID_AT_ST, Any::encode_from(&Utf8StringRef::new("CA")?)?),
        (
            ID_AT_O,
            Any::encode_from(&Utf8StringRef::new(SIMULATED_ORGANIZATION)?)?,
        ),
        (
            ID_AT_CN,
            Any::encode_from(&Utf8StringRef::new(common_name)?)?,
        ),
    ];
    let mut rdns = Vec::with_capacity(attributes.len());
    for (oid, value) in attributes {
        let set = SetOfVec::try_from(vec![AttributeTypeAndValue { oid, value }])?;
        rdns.push(RelativeDistinguishedName(set));
    }
    Ok(RdnSequence(rdns))
}

/// `years` calendar years after `start` (29 February maps to 28 February).
fn add_years(start: DateTime, years: u16, what: &'static str) -> Result<DateTime, SimError> {
    let year = start
        .year()
        .checked_add(years)
        .ok_or(SimError::Time { what })?;
    let at = |day| {
        DateTime::new(
            year,
            start.month(),
            day,
            start.hour(),
            start.minutes(),
            start.seconds(),
        )
    };
    at(start.day())
        .or_else(|_| at(start.day().saturating_sub(1)))
        .map_err(|_| SimError::Time { what })
}

/// `[not_before, not_before + years]`; the builder turns years before 2050 into UTCTime.
pub(crate) fn validity(
    not_before_unix: u64,
    years: u16,
    what: &'static str,
) -> Result<Validity, SimError> {
    let start = DateTime::from_unix_duration(Duration::from_secs(not_before_unix))
        .map_err(|_| SimError::Time { what })?;
    let end = add_years(start, years, what)?;
    Ok(Validity {
        not_before: Time::GeneralTime(GeneralizedTime::from_date_time(start)),
        not_after: Time::GeneralTime(GeneralizedTime::from_date_time(end)),
    })
}

fn crl_distribution_points(product: Product) -> der::Result<CrlDistributionPoints> {
    Ok(CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(Ia5String::new(&crl_url(product))?),
        ])),
        reasons: None,
        crl_issuer: None,
    }]))
}

/// The self-signed ARK, with AMD's extensions in AMD's order.
pub(crate) fn build_ark(
    product: Product,
    ark: &RsaKey,
    not_before_unix: u64,
) -> Result<Vec<u8>, SimError> {
    let (serial, _) = serials(product);
    let subject = amd_style_name(&ark_common_name(product)).map_err(encoding("the ark name"))?;
    let signer = ark.signer(Trailer::Explicit);
    let mut builder = CertificateBuilder::new(
        Profile::Manual { issuer: None },
        SerialNumber::from(serial),
        validity(not_before_unix, CA_VALIDITY_YEARS, "the ark validity")?,
        subject,
        ark.spki().clone(),
        &signer,
    )
    .map_err(certificate("ARK"))?;
    let ski = SubjectKeyIdentifier::try_from(ark.spki().owned_to_ref())
        .map_err(encoding("the ark subject key identifier"))?;
    let crl_dp = crl_distribution_points(product).map_err(encoding("the ark crl url"))?;
    builder
        .add_extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))
        .and_then(|()| builder.add_extension(&ski))
        .and_then(|()| {
            builder.add_extension(&BasicConstraints {
                ca: true,
                path_len_constraint: None,
            })
        })
        .and_then(|()| builder.add_extension(&crl_dp))
        .map_err(certificate("ARK"))?;
    let cert = builder
        .build::<PssSignature>()
        .map_err(certificate("ARK"))?;
    cert.to_der().map_err(encoding("the ark certificate"))
}

/// The ASK, signed by the ARK, with AMD's extensions in AMD's order.
pub(crate) fn build_ask(
    product: Product,
    ark: &RsaKey,
    ask: &RsaKey,
    not_before_unix: u64,
) -> Result<Vec<u8>, SimError> {
    let (_, serial) = serials(product);
    let issuer = amd_style_name(&ark_common_name(product)).map_err(encoding("the ark name"))?;
    let subject = amd_style_name(&ask_common_name(product)).map_err(encoding("the ask name"))?;
    let signer = ark.signer(Trailer::Explicit);
    let mut builder = CertificateBuilder::new(
        Profile::Manual {
            issuer: Some(issuer),
        },
        SerialNumber::from(serial),
        validity(not_before_unix, CA_VALIDITY_YEARS, "the ask validity")?,
        subject,
        ask.spki().clone(),
        &signer,
    )
    .map_err(certificate("ASK"))?;
    let ski = SubjectKeyIdentifier::try_from(ask.spki().owned_to_ref())
        .map_err(encoding("the ask subject key identifier"))?;
    let aki = AuthorityKeyIdentifier::try_from(ark.spki().owned_to_ref())
        .map_err(encoding("the ask authority key identifier"))?;
    let crl_dp = crl_distribution_points(product).map_err(encoding("the ask crl url"))?;
    builder
        .add_extension(&ski)
        .and_then(|()| builder.add_extension(&aki))
        .and_then(|()| {
            builder.add_extension(&BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            })
        })
        .and_then(|()| builder.add_extension(&KeyUsage(KeyUsages::KeyCertSign.into())))
        .and_then(|()| builder.add_extension(&crl_dp))
        .map_err(certificate("ASK"))?;
    let cert = builder
        .build::<PssSignature>()
        .map_err(certificate("ASK"))?;
    cert.to_der().map_err(encoding("the ask certificate"))
}

/// What a VCEK certifies.
pub(crate) struct VcekSubject<'a> {
    pub(crate) product: Product,
    pub(crate) chip_id: &'a [u8; 64],
    pub(crate) tcb: TcbVersion,
    pub(crate) spki: SubjectPublicKeyInfoOwned,
    pub(crate) not_before_unix: u64,
}

/// The VCEK, signed by the ASK: a serial per chip and TCB (`crl::vcek_serial`; AMD's are 0),
/// no standard extensions, AMD's extensions in AMD's order for the product.
pub(crate) fn build_vcek(ask: &RsaKey, vcek: &VcekSubject<'_>) -> Result<Vec<u8>, SimError> {
    let product = vcek.product;
    let issuer = amd_style_name(&ask_common_name(product)).map_err(encoding("the ask name"))?;
    let subject = amd_style_name(VCEK_COMMON_NAME).map_err(encoding("the vcek name"))?;
    // KDS writes the explicit trailer in VCEKs issued until 2023 and omits it in those issued
    // since late 2024 (all three products); mirror what it issues now.
    let signer = ask.signer(Trailer::Omitted);
    let mut builder = CertificateBuilder::new(
        Profile::Manual {
            issuer: Some(issuer),
        },
        SerialNumber::new(&vcek_serial(
            product,
            vcek.chip_id,
            &vcek.tcb.to_bytes(product),
        ))
        .map_err(encoding("the vcek serial"))?,
        validity(
            vcek.not_before_unix,
            VCEK_VALIDITY_YEARS,
            "the vcek validity",
        )?,
        subject,
        vcek.spki.clone(),
        &signer,
    )
    .map_err(certificate("VCEK"))?;
    for extension in amd_extensions(vcek).map_err(encoding("the vcek extensions"))? {
        builder
            .add_extension(&extension)
            .map_err(certificate("VCEK"))?;
    }
    let cert = builder
        .build::<PssSignature>()
        .map_err(certificate("VCEK"))?;
    cert.to_der().map_err(encoding("the vcek certificate"))
}

/// The AMD VCEK extensions (the verifier's `chain::AmdExtension`, arc 1.3.6.1.4.1.3704.1) with their
/// DER-encoded values.
fn amd_extensions(vcek: &VcekSubject<'_>) -> der::Result<Vec<RawExtension>> {
    let tcb = &vcek.tcb;
    let int = |extension: AmdExtension, value: u8| -> der::Result<RawExtension> {
        Ok(RawExtension {
            oid: extension.oid(),
            value: value.to_der()?,
        })
    };
    let product_name = RawExtension {
        oid: AmdExtension::ProductName.oid(),
        value: Ia5String::new(vcek_product_name(vcek.product))?.to_der()?,
    };
    let hw_id = |len: usize| -> der::Result<RawExtension> {
        Ok(RawExtension {
            oid: AmdExtension::HwId.oid(),
            // AMD stores the chip ID bytes directly as the extnValue, without an OCTET STRING.
            value: vcek.chip_id.iter().take(len).copied().collect(),
        })
    };
    Ok(match vcek.product {
        Product::Milan | Product::Genoa => vec![
            int(AmdExtension::StructVersion, 0)?,
            product_name,
            int(AmdExtension::BlSpl, tcb.bootloader)?,
            int(AmdExtension::TeeSpl, tcb.tee)?,
            int(AmdExtension::Spl4, 0)?,
            int(AmdExtension::Spl5, 0)?,
            int(AmdExtension::Spl6, 0)?,
            int(AmdExtension::Spl7, 0)?,
            int(AmdExtension::SnpSpl, tcb.snp)?,
            int(AmdExtension::UcodeSpl, tcb.microcode)?,
            hw_id(64)?,
        ],
        Product::Turin => vec![
            int(AmdExtension::StructVersion, 1)?,
            product_name,
            int(AmdExtension::FmcSpl, tcb.fmc.unwrap_or(0))?,
            int(AmdExtension::BlSpl, tcb.bootloader)?,
            int(AmdExtension::TeeSpl, tcb.tee)?,
            int(AmdExtension::SnpSpl, tcb.snp)?,
            int(AmdExtension::Spl5, 0)?,
            int(AmdExtension::Spl6, 0)?,
            int(AmdExtension::Spl7, 0)?,
            int(AmdExtension::UcodeSpl, tcb.microcode)?,
            hw_id(8)?,
        ],
    })
}

/// One AMD extension: a runtime OID and the exact extnValue bytes.
struct RawExtension {
    oid: ObjectIdentifier,
    value: Vec<u8>,
}

// `AsExtension` requires a compile-time OID; the AMD OIDs are chosen at run time, so
// `to_extension` is overridden and this placeholder is never used.
impl der::oid::AssociatedOid for RawExtension {
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1");
}

impl Encode for RawExtension {
    fn encoded_len(&self) -> der::Result<Length> {
        Length::try_from(self.value.len())
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.value)
    }
}

impl AsExtension for RawExtension {
    fn critical(&self, _subject: &Name, _extensions: &[Extension]) -> bool {
        false
    }

    fn to_extension(&self, _subject: &Name, _extensions: &[Extension]) -> der::Result<Extension> {
        Ok(Extension {
            extn_id: self.oid,
            critical: false,
            extn_value: der::asn1::OctetString::new(self.value.clone())?,
        })
    }
}
