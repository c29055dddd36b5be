//! The `sevsnp.Attestation` message: built by issuers, parsed by verifiers.

use std::borrow::Cow;

use prost::Message as _;

use super::error::EvidenceError;
use super::report::{fms_from_cpuid1_eax, report_from_proto, report_to_proto};
use super::sevsnp::{self, sev_product::SevProductName};
use super::{CRL_EXTRAS_KEY, MAX_ATTESTATION_LEN, MAX_EXTRAS};
use crate::Product;
use crate::chain::{AmdExtensions, CertRole, LeafKind};
use crate::collateral::{CollateralRequest, CollateralSource};
use crate::report::{Cpuid, Field, REPORT_LEN};

/// The proto enum value for a product.
fn product_name(product: Option<Product>) -> SevProductName {
    match product {
        Some(Product::Milan) => SevProductName::SevProductMilan,
        Some(Product::Genoa) => SevProductName::SevProductGenoa,
        Some(Product::Turin) => SevProductName::SevProductTurin,
        None => SevProductName::SevProductUnknown,
    }
}

/// The product of a proto enum value (`None` for unknown).
fn product_of(name: SevProductName) -> Option<Product> {
    match name {
        SevProductName::SevProductMilan => Some(Product::Milan),
        SevProductName::SevProductGenoa => Some(Product::Genoa),
        SevProductName::SevProductTurin => Some(Product::Turin),
        SevProductName::SevProductUnknown => None,
    }
}

/// The product a report's CPUID bytes name (version 3 and later), as upstream derives
/// `SevProduct` from CPUID(1).EAX (family 0x19/0x1A and the model).
fn cpuid_product(report: &sevsnp::Report) -> Option<Product> {
    if report.version < 3 {
        return None;
    }
    let (family, model, stepping) = fms_from_cpuid1_eax(report.cpuid1eax_fms);
    Cpuid {
        family,
        model,
        stepping,
    }
    .product()
}

/// The product a VCEK's or VLEK's productName extension names (`Milan-B0` → Milan), if any.
fn leaf_product(kind: LeafKind, der: &[u8]) -> Option<Product> {
    let role = match kind {
        LeafKind::Vcek => CertRole::Vcek,
        LeafKind::Vlek => CertRole::Vlek,
    };
    let name = AmdExtensions::from_certificate_der(der, role)
        .ok()?
        .product_name?;
    Product::from_name(name.split('-').next().unwrap_or_default())
}

/// Builds the `sevsnp.Attestation` an issuer puts under [`super::SNP_ATTESTATION_OID`]: the
/// report (converted field by field), the certificates it has, the CRL under
/// [`CRL_EXTRAS_KEY`], and the product.
///
/// The product is derived like upstream's issuer, which reads CPUID(1).EAX: here from the
/// report's own CPUID bytes for version 3 and later (the same bytes the verifier decodes the
/// report with), and for version 2, which has none, from the leaf certificate's productName;
/// `SEV_PRODUCT_UNKNOWN` if neither names a known product. `machine_stepping` is present and 0,
/// as upstream Contrast forces it.
#[derive(Clone, Copy, Debug)]
pub struct AttestationBuilder<'a> {
    report: &'a [u8],
    leaf: Option<(LeafKind, &'a [u8])>,
    intermediate: Option<&'a [u8]>,
    ark: Option<&'a [u8]>,
    crl: Option<&'a [u8]>,
}

impl<'a> AttestationBuilder<'a> {
    /// A builder for the raw 1184-byte `report`, without certificates.
    #[must_use]
    pub fn new(report: &'a [u8]) -> Self {
        Self {
            report,
            leaf: None,
            intermediate: None,
            ark: None,
            crl: None,
        }
    }

    /// The VCEK or VLEK (DER) that signed the report.
    #[must_use]
    pub fn leaf(mut self, kind: LeafKind, der: &'a [u8]) -> Self {
        self.leaf = Some((kind, der));
        self
    }

    /// The ASK (for a VCEK) or ASVK (for a VLEK), DER. go-sev-guest carries both in `ask_cert`.
    #[must_use]
    pub fn intermediate(mut self, der: Option<&'a [u8]>) -> Self {
        self.intermediate = der;
        self
    }

    /// The ARK (DER), as presented; the verifier trusts only its own anchor.
    #[must_use]
    pub fn ark(mut self, der: Option<&'a [u8]>) -> Self {
        self.ark = der;
        self
    }

    /// The ARK-signed CRL (DER), carried under [`CRL_EXTRAS_KEY`].
    #[must_use]
    pub fn crl(mut self, der: Option<&'a [u8]>) -> Self {
        self.crl = der;
        self
    }

    /// The message. Absent (or empty) certificates are left out.
    ///
    /// # Errors
    /// The [`EvidenceError`] of [`super::report_to_proto`].
    pub fn build(&self) -> Result<sevsnp::Attestation, EvidenceError> {
        let report = report_to_proto(self.report)?;
        let product = cpuid_product(&report)
            .or_else(|| self.leaf.and_then(|(kind, der)| leaf_product(kind, der)));
        let owned = |der: Option<&[u8]>| der.map(<[u8]>::to_vec).unwrap_or_default();
        let (vcek_cert, vlek_cert) = match self.leaf {
            Some((LeafKind::Vcek, der)) => (der.to_vec(), Vec::new()),
            Some((LeafKind::Vlek, der)) => (Vec::new(), der.to_vec()),
            None => (Vec::new(), Vec::new()),
        };
        let mut extras = std::collections::HashMap::new();
        if let Some(crl) = self.crl.filter(|crl| !crl.is_empty()) {
            extras.insert(CRL_EXTRAS_KEY.to_owned(), crl.to_vec());
        }
        Ok(sevsnp::Attestation {
            report: Some(report),
            certificate_chain: Some(sevsnp::CertificateChain {
                vcek_cert,
                ask_cert: owned(self.intermediate),
                ark_cert: owned(self.ark),
                vlek_cert,
                extras,
                ..Default::default()
            }),
            product: Some(sevsnp::SevProduct {
                name: product_name(product).into(),
                machine_stepping: Some(0),
                ..Default::default()
            }),
        })
    }

    /// The serialised message, the bytes of the aTLS certificate extension.
    ///
    /// # Errors
    /// As [`AttestationBuilder::build`].
    pub fn encode(&self) -> Result<Vec<u8>, EvidenceError> {
        Ok(self.build()?.encode_to_vec())
    }
}

/// A parsed and validated `sevsnp.Attestation`: the rebuilt 1184-byte report (unverified) and
/// the certificates and CRL presented with it.
///
/// Strict: at most [`MAX_ATTESTATION_LEN`] bytes; `report` required and converted by
/// [`super::report_from_proto`]; `product.name` a defined value and, where the report has CPUID
/// bytes naming a known product, that product; at most [`MAX_EXTRAS`] entries in
/// `certificate_chain.extras`. Extras under other keys than [`CRL_EXTRAS_KEY`] are ignored
/// (go-sev-guest passes unknown certificate-table GUIDs through there), as are the deprecated
/// `firmware_cert` and `stepping`. Certificates may be absent: an AMD anchor then uses its
/// compiled-in ASK/ARK, a missing VCEK/VLEK fails in the verifier unless it has one cached.
#[derive(Clone, Debug, PartialEq)]
pub struct SnpEvidence {
    report: Box<[u8; REPORT_LEN]>,
    chain: sevsnp::CertificateChain,
    product: Option<Product>,
}

impl SnpEvidence {
    /// Parses and validates serialised `sevsnp.Attestation` bytes (see the type docs).
    ///
    /// # Errors
    /// [`EvidenceError::TooLarge`], [`EvidenceError::Decode`], [`EvidenceError::Missing`],
    /// [`EvidenceError::UnknownProductName`], [`EvidenceError::ProductMismatch`],
    /// [`EvidenceError::TooManyExtras`], and the errors of [`super::report_from_proto`].
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > MAX_ATTESTATION_LEN {
            return Err(EvidenceError::TooLarge {
                expected: MAX_ATTESTATION_LEN,
                found: bytes.len(),
            });
        }
        let attestation =
            sevsnp::Attestation::decode(bytes).map_err(|e| EvidenceError::Decode {
                reason: e.to_string(),
            })?;
        Self::from_proto(attestation)
    }

    /// Validates a decoded message (see the type docs).
    ///
    /// # Errors
    /// As [`SnpEvidence::parse`], without the size and decode errors.
    pub fn from_proto(attestation: sevsnp::Attestation) -> Result<Self, EvidenceError> {
        let proto_report = attestation
            .report
            .ok_or(EvidenceError::Missing { field: "report" })?;
        let report = report_from_proto(&proto_report)?;
        let product = match attestation.product {
            None => None,
            Some(product) => {
                let name = SevProductName::try_from(product.name).map_err(|_| {
                    EvidenceError::UnknownProductName {
                        found: product.name,
                    }
                })?;
                let claimed = product_of(name);
                if let (Some(claimed), Some(cpuid)) = (claimed, cpuid_product(&proto_report))
                    && claimed != cpuid
                {
                    return Err(EvidenceError::ProductMismatch {
                        expected: cpuid.name(),
                        found: claimed.name(),
                    });
                }
                claimed
            }
        };
        let chain = attestation.certificate_chain.unwrap_or_default();
        if chain.extras.len() > MAX_EXTRAS {
            return Err(EvidenceError::TooManyExtras {
                expected: MAX_EXTRAS,
                found: chain.extras.len(),
            });
        }
        Ok(Self {
            report,
            chain,
            product,
        })
    }

    /// The rebuilt report (not yet verified).
    #[must_use]
    pub fn report(&self) -> &[u8; REPORT_LEN] {
        &self.report
    }

    /// REPORT_DATA of the (unverified) report.
    #[must_use]
    pub fn report_data(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        if let Some(field) = self.report.get(Field::ReportData.range()) {
            out.copy_from_slice(field);
        }
        out
    }

    /// The product `product.name` claims (`None` if absent or unknown). A hint only: the
    /// verifier decodes the report by its CPUID bytes and its trust anchor.
    #[must_use]
    pub fn claimed_product(&self) -> Option<Product> {
        self.product
    }

    /// The certificate chain as received.
    #[must_use]
    pub fn certificate_chain(&self) -> &sevsnp::CertificateChain {
        &self.chain
    }

    /// The VCEK or VLEK (DER) of `kind`, if presented.
    #[must_use]
    pub fn leaf(&self, kind: LeafKind) -> Option<&[u8]> {
        let der = match kind {
            LeafKind::Vcek => &self.chain.vcek_cert,
            LeafKind::Vlek => &self.chain.vlek_cert,
        };
        non_empty(der)
    }

    /// The ASK or ASVK (DER), if presented.
    #[must_use]
    pub fn intermediate(&self) -> Option<&[u8]> {
        non_empty(&self.chain.ask_cert)
    }

    /// The ARK (DER), if presented.
    #[must_use]
    pub fn ark(&self) -> Option<&[u8]> {
        non_empty(&self.chain.ark_cert)
    }

    /// The CRL (DER) under [`CRL_EXTRAS_KEY`], if presented.
    #[must_use]
    pub fn crl(&self) -> Option<&[u8]> {
        self.chain
            .extras
            .get(CRL_EXTRAS_KEY)
            .and_then(|crl| non_empty(crl))
    }
}

fn non_empty(bytes: &[u8]) -> Option<&[u8]> {
    (!bytes.is_empty()).then_some(bytes)
}

/// The evidence presents its own collateral; a verifier still decides trust by its anchor.
impl CollateralSource for SnpEvidence {
    fn leaf(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        SnpEvidence::leaf(self, request.leaf_kind).map(Cow::Borrowed)
    }
    fn intermediate(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        SnpEvidence::intermediate(self).map(Cow::Borrowed)
    }
    fn ark(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        SnpEvidence::ark(self).map(Cow::Borrowed)
    }
    fn crl(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        SnpEvidence::crl(self).map(Cow::Borrowed)
    }
}
