//! The AMD certificate chain: pinned roots, chain verification, report binding and CRL.
//!
//! ```text
//! ARK (self-signed, RSA-4096) ──► ASK  (RSA-4096) ──► VCEK (EC P-384, per chip and TCB)
//!                             └─► ASVK (RSA-4096) ──► VLEK (EC P-384, per cloud provider)
//! ```
//!
//! Every certificate and the CRL are signed with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48;
//! nothing else is accepted. The ARK is **never** taken from the host: [`TrustAnchor::Amd`] uses
//! the ARK compiled into this crate (`roots/`), and [`TrustAnchor::Pinned`] accepts only the ARK
//! whose SHA-256 the caller pinned (the simulated platform). The two can never be confused: a
//! pinned fingerprint equal to an AMD ARK is refused, the anchor kind is part of the cache key,
//! and [`VerifiedChain::anchor`] records which one verified.
//!
//! The VCEK/VLEK carries AMD extensions under `1.3.6.1.4.1.3704.1`: structVersion (`.1`),
//! productName (`.2`), the SPLs (`.3.1` blSPL, `.3.2` teeSPL, `.3.3` snpSPL, `.3.4`–`.3.7`
//! reserved, `.3.8` ucodeSPL, `.3.9` fmcSPL on Turin), hwID (`.4`, the raw chip id: 64 bytes, or
//! 8 on Turin) and csp_id (`.5`, VLEK only). [`check_binding`] ties a report to them.

use std::fmt;
use std::sync::OnceLock;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PSS_2048_8192_SHA384};
use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Reader, SliceReader};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::name::Name;
use x509_cert::spki::AlgorithmIdentifierOwned;

use contrast_core::sha256;

use crate::Product;
use crate::error::Error;
use crate::report::{LeafKey, SigningKey};
use crate::tcb::{TcbComponent, TcbVersion};
use crate::time::UnixTime;

const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// OIDs of the AMD certificate extensions (arc 1.3.6.1.4.1.3704.1); public as [`AmdExtension`].
mod oid {
    use const_oid::ObjectIdentifier;

    /// structVersion (INTEGER).
    pub(super) const STRUCT_VERSION: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
    /// productName (IA5String).
    pub(super) const PRODUCT_NAME: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
    /// blSPL (INTEGER).
    pub(super) const BL_SPL: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    /// teeSPL (INTEGER).
    pub(super) const TEE_SPL: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    /// snpSPL (INTEGER).
    pub(super) const SNP_SPL: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    /// spl_4 (reserved, INTEGER 0; absent on Turin).
    pub(super) const SPL_4: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.4");
    /// spl_5 (reserved).
    pub(super) const SPL_5: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.5");
    /// spl_6 (reserved).
    pub(super) const SPL_6: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.6");
    /// spl_7 (reserved).
    pub(super) const SPL_7: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.7");
    /// ucodeSPL (INTEGER).
    pub(super) const UCODE_SPL: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    /// fmcSPL (INTEGER, Turin).
    pub(super) const FMC_SPL: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    /// hwID (raw chip id bytes).
    pub(super) const HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");
    /// csp_id (IA5String, VLEK).
    pub(super) const CSP_ID: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.5");
}

/// An AMD certificate extension of the VCEK/VLEK (arc 1.3.6.1.4.1.3704.1), by name; its OID is
/// [`AmdExtension::oid`]. The one definition of the OIDs: the parser ([`AmdExtensions`]) and the
/// simulated platform's certificate writer use these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AmdExtension {
    /// structVersion (`.1`, INTEGER).
    StructVersion,
    /// productName (`.2`, IA5String).
    ProductName,
    /// blSPL (`.3.1`, INTEGER).
    BlSpl,
    /// teeSPL (`.3.2`, INTEGER).
    TeeSpl,
    /// snpSPL (`.3.3`, INTEGER).
    SnpSpl,
    /// spl_4 (`.3.4`, reserved, INTEGER 0; absent on Turin).
    Spl4,
    /// spl_5 (`.3.5`, reserved).
    Spl5,
    /// spl_6 (`.3.6`, reserved).
    Spl6,
    /// spl_7 (`.3.7`, reserved).
    Spl7,
    /// ucodeSPL (`.3.8`, INTEGER).
    UcodeSpl,
    /// fmcSPL (`.3.9`, INTEGER, Turin).
    FmcSpl,
    /// hwID (`.4`, the raw chip id bytes).
    HwId,
    /// csp_id (`.5`, IA5String, VLEK).
    CspId,
}

impl AmdExtension {
    /// The extension's OID.
    #[must_use]
    pub const fn oid(self) -> ObjectIdentifier {
        match self {
            Self::StructVersion => oid::STRUCT_VERSION,
            Self::ProductName => oid::PRODUCT_NAME,
            Self::BlSpl => oid::BL_SPL,
            Self::TeeSpl => oid::TEE_SPL,
            Self::SnpSpl => oid::SNP_SPL,
            Self::Spl4 => oid::SPL_4,
            Self::Spl5 => oid::SPL_5,
            Self::Spl6 => oid::SPL_6,
            Self::Spl7 => oid::SPL_7,
            Self::UcodeSpl => oid::UCODE_SPL,
            Self::FmcSpl => oid::FMC_SPL,
            Self::HwId => oid::HW_ID,
            Self::CspId => oid::CSP_ID,
        }
    }
}

/// The AMD root and intermediate certificates compiled into this crate (DER), the pinned roots
/// of [`TrustAnchor::Amd`].
mod roots {
    use crate::Product;

    const MILAN_ARK: &[u8] = include_bytes!("../roots/milan/ark.der");
    const MILAN_ASK: &[u8] = include_bytes!("../roots/milan/ask.der");
    const MILAN_ASVK: &[u8] = include_bytes!("../roots/milan/asvk.der");
    const GENOA_ARK: &[u8] = include_bytes!("../roots/genoa/ark.der");
    const GENOA_ASK: &[u8] = include_bytes!("../roots/genoa/ask.der");
    const GENOA_ASVK: &[u8] = include_bytes!("../roots/genoa/asvk.der");
    const TURIN_ARK: &[u8] = include_bytes!("../roots/turin/ark.der");
    const TURIN_ASK: &[u8] = include_bytes!("../roots/turin/ask.der");
    const TURIN_ASVK: &[u8] = include_bytes!("../roots/turin/asvk.der");

    /// The AMD Root Key certificate (ARK-Milan, ARK-Genoa, ARK-Turin).
    #[must_use]
    pub(super) const fn ark(product: Product) -> &'static [u8] {
        match product {
            Product::Milan => MILAN_ARK,
            Product::Genoa => GENOA_ARK,
            Product::Turin => TURIN_ARK,
        }
    }

    /// The AMD SEV Key certificate, issuer of VCEKs (SEV-Milan, SEV-Genoa, SEV-Turin).
    #[must_use]
    pub(super) const fn ask(product: Product) -> &'static [u8] {
        match product {
            Product::Milan => MILAN_ASK,
            Product::Genoa => GENOA_ASK,
            Product::Turin => TURIN_ASK,
        }
    }

    /// The AMD SEV VLEK Key certificate, issuer of VLEKs (SEV-VLEK-Milan, ...).
    #[must_use]
    pub(super) const fn asvk(product: Product) -> &'static [u8] {
        match product {
            Product::Milan => MILAN_ASVK,
            Product::Genoa => GENOA_ASVK,
            Product::Turin => TURIN_ASVK,
        }
    }

    /// All three products.
    pub(super) const PRODUCTS: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];
}

/// The role of a certificate (or the CRL) in the chain, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertRole {
    /// AMD Root Key.
    Ark,
    /// AMD SEV Key (VCEK issuer).
    Ask,
    /// AMD SEV VLEK Key (VLEK issuer).
    Asvk,
    /// Versioned Chip Endorsement Key.
    Vcek,
    /// Versioned Loaded Endorsement Key.
    Vlek,
    /// The ARK's certificate revocation list.
    Crl,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ark => "ARK",
            Self::Ask => "ASK",
            Self::Asvk => "ASVK",
            Self::Vcek => "VCEK",
            Self::Vlek => "VLEK",
            Self::Crl => "CRL",
        })
    }
}

/// The kind of the leaf certificate that signs reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeafKind {
    /// Chip-specific key, issued by the ASK.
    Vcek,
    /// Cloud-provider key, issued by the ASVK.
    Vlek,
}

impl LeafKind {
    /// The leaf's role.
    #[must_use]
    pub const fn role(self) -> CertRole {
        match self {
            Self::Vcek => CertRole::Vcek,
            Self::Vlek => CertRole::Vlek,
        }
    }

    /// The role of the leaf's issuer (ASK or ASVK).
    #[must_use]
    pub const fn issuer_role(self) -> CertRole {
        match self {
            Self::Vcek => CertRole::Ask,
            Self::Vlek => CertRole::Asvk,
        }
    }

    /// The leaf kind a report's SIGNING_KEY asks for (`None` for an unsigned report).
    #[must_use]
    pub const fn from_signing_key(key: SigningKey) -> Option<Self> {
        match key {
            SigningKey::Vcek => Some(Self::Vcek),
            SigningKey::Vlek => Some(Self::Vlek),
            SigningKey::None => None,
        }
    }
}

impl fmt::Display for LeafKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.role().fmt(f)
    }
}

/// What the chain must end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrustAnchor {
    /// AMD's ARK for the product, compiled into this crate. A presented ARK is ignored when it
    /// has the same key and rejected ([`Error::UntrustedRoot`]) otherwise.
    Amd(Product),
    /// A caller-pinned root (the simulated platform): the presented ARK must have exactly this
    /// SHA-256 (of its DER). An AMD ARK cannot be pinned this way.
    Pinned {
        /// SHA-256 of the ARK certificate DER (the manifest's `SimulatedARKFingerprint`).
        ark_der_sha256: [u8; 32],
        /// The product whose report layout and extensions the simulated chain uses.
        product: Product,
    },
}

impl TrustAnchor {
    /// The product of the anchor.
    #[must_use]
    pub const fn product(&self) -> Product {
        match self {
            Self::Amd(product) | Self::Pinned { product, .. } => *product,
        }
    }

    /// True for [`TrustAnchor::Amd`].
    #[must_use]
    pub const fn is_amd(&self) -> bool {
        matches!(self, Self::Amd(_))
    }
}

/// The DER certificates of one chain, as presented (host-supplied, untrusted).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainCertificates<'a> {
    /// The ARK, if presented. With [`TrustAnchor::Amd`] it may be omitted.
    pub ark: Option<&'a [u8]>,
    /// The ASK (VCEK chain) or ASVK (VLEK chain). With [`TrustAnchor::Amd`] it may be omitted
    /// (the compiled-in one is used).
    pub intermediate: Option<&'a [u8]>,
    /// The VCEK or VLEK.
    pub leaf: &'a [u8],
}

/// A parsed certificate with the raw bytes of its signed part.
#[derive(Clone, Debug)]
pub(crate) struct ParsedCert<'a> {
    tbs: &'a [u8],
    pub(crate) cert: Certificate,
    role: CertRole,
}

impl<'a> ParsedCert<'a> {
    pub(crate) fn parse(der: &'a [u8], role: CertRole) -> Result<Self, Error> {
        let parse_err = |e: der::Error| Error::CertificateParse {
            role,
            reason: e.to_string(),
        };
        let cert = Certificate::from_der(der).map_err(parse_err)?;
        let tbs = outer_first_tlv(der).map_err(parse_err)?;
        Ok(Self { tbs, cert, role })
    }

    fn subject(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }

    fn spki_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap_or_default()
    }
}

/// The first TLV inside the outer SEQUENCE of `der`: a certificate's or CRL's to-be-signed bytes
/// exactly as received (what the signature covers; re-encoding could differ).
pub(crate) fn outer_first_tlv(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    let header = der::Header::decode(&mut reader)?;
    header.tag.assert_eq(der::Tag::Sequence)?;
    reader.tlv_bytes()
}

fn name_string(name: &Name) -> String {
    name.to_string()
}

fn common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)
        .and_then(|atv| {
            let bytes = atv.value.to_der().ok()?;
            if let Ok(s) = Utf8StringRef::from_der(&bytes) {
                return Some(s.as_str().to_owned());
            }
            if let Ok(s) = PrintableStringRef::from_der(&bytes) {
                return Some(s.as_str().to_owned());
            }
            Ia5StringRef::from_der(&bytes)
                .ok()
                .map(|s| s.as_str().to_owned())
        })
}

fn is_absent_or_null(params: Option<&der::asn1::AnyRef<'_>>) -> bool {
    params.is_none_or(|p| p.is_null())
}

/// Accepts only RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48, trailer field 1.
fn check_pss(algorithm: &AlgorithmIdentifierOwned, role: CertRole) -> Result<(), Error> {
    if algorithm.oid != RSASSA_PSS {
        return Err(Error::CertificateSignatureAlgorithm {
            role,
            found: algorithm.oid.to_string(),
        });
    }
    let bad = |reason: String| Error::PssParameters { role, reason };
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or_else(|| bad("parameters absent".into()))?;
    let params: pkcs1::RsaPssParams<'_> = params
        .decode_as()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    if params.hash.oid != SHA384 || !is_absent_or_null(params.hash.parameters.as_ref()) {
        return Err(bad(format!("hash {}", params.hash.oid)));
    }
    if params.mask_gen.oid != MGF1 {
        return Err(bad(format!("mask generation {}", params.mask_gen.oid)));
    }
    match &params.mask_gen.parameters {
        Some(h) if h.oid == SHA384 && is_absent_or_null(h.parameters.as_ref()) => {}
        Some(h) => return Err(bad(format!("MGF1 hash {}", h.oid))),
        None => return Err(bad("MGF1 hash absent (SHA-1)".into())),
    }
    if params.salt_len != 48 {
        return Err(bad(format!("salt length {}", params.salt_len)));
    }
    if params.trailer_field != pkcs1::TrailerField::BC {
        return Err(bad("trailer field".into()));
    }
    Ok(())
}

/// An RSA key that verifies RSASSA-PSS SHA-384 signatures (an ARK, ASK or ASVK).
fn rsa_key(cert: &ParsedCert<'_>) -> Result<ParsedPublicKey, Error> {
    let spki = &cert.cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(Error::IssuerKey { role: cert.role });
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or(Error::IssuerKey { role: cert.role })?;
    ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, key)
        .map_err(|_| Error::IssuerKey { role: cert.role })
}

/// Verifies `cert`'s signature (PSS parameters first) with `issuer_key`, and that its issuer
/// name is `issuer`'s subject.
fn verify_issued_by(
    cert: &ParsedCert<'_>,
    issuer: &ParsedCert<'_>,
    issuer_key: &ParsedPublicKey,
) -> Result<(), Error> {
    let role = cert.role;
    check_pss(&cert.cert.signature_algorithm, role)?;
    if cert.cert.tbs_certificate.signature != cert.cert.signature_algorithm {
        return Err(Error::SignatureAlgorithmMismatch { role });
    }
    if &cert.cert.tbs_certificate.issuer != issuer.subject() {
        return Err(Error::IssuerMismatch {
            role,
            issuer: issuer.role,
            expected: name_string(issuer.subject()),
            found: name_string(&cert.cert.tbs_certificate.issuer),
        });
    }
    let signature = cert
        .cert
        .signature
        .as_bytes()
        .ok_or(Error::CertificateSignatureInvalid {
            role,
            issuer: issuer.role,
        })?;
    issuer_key
        .verify_sig(cert.tbs, signature)
        .map_err(|_| Error::CertificateSignatureInvalid {
            role,
            issuer: issuer.role,
        })
}

/// The ARK and the intermediate (ASK or ASVK) of a chain, parsed, with their signatures and CA
/// constraints checked (everything but their validity at a given time).
struct Issuers<'a> {
    ark: ParsedCert<'a>,
    ark_key: ParsedPublicKey,
    intermediate: ParsedCert<'a>,
    intermediate_key: ParsedPublicKey,
}

impl<'a> Issuers<'a> {
    fn verify(
        ark_der: &'a [u8],
        intermediate_der: &'a [u8],
        intermediate_role: CertRole,
    ) -> Result<Self, Error> {
        let ark = ParsedCert::parse(ark_der, CertRole::Ark)?;
        let ark_key = rsa_key(&ark)?;
        verify_issued_by(&ark, &ark, &ark_key)?;
        check_ca(&ark, true)?;
        let intermediate = ParsedCert::parse(intermediate_der, intermediate_role)?;
        verify_issued_by(&intermediate, &ark, &ark_key)?;
        check_ca(&intermediate, false)?;
        let intermediate_key = rsa_key(&intermediate)?;
        Ok(Self {
            ark,
            ark_key,
            intermediate,
            intermediate_key,
        })
    }
}

fn compiled_in_intermediate(product: Product, leaf_kind: LeafKind) -> &'static [u8] {
    match leaf_kind {
        LeafKind::Vcek => roots::ask(product),
        LeafKind::Vlek => roots::asvk(product),
    }
}

/// The compiled-in issuers of `product` and `leaf_kind`, verified once per process: the outcome
/// cannot change, and verifying them per chain costs two certificate parses and two RSA-4096
/// verifications.
fn compiled_in_issuers(
    product: Product,
    leaf_kind: LeafKind,
) -> &'static Result<Issuers<'static>, Error> {
    static VERIFIED: [OnceLock<Result<Issuers<'static>, Error>>; 6] =
        [const { OnceLock::new() }; 6];
    let product_index = match product {
        Product::Milan => 0,
        Product::Genoa => 1,
        Product::Turin => 2,
    };
    let kind_index = match leaf_kind {
        LeafKind::Vcek => 0,
        LeafKind::Vlek => 1,
    };
    VERIFIED[product_index * 2 + kind_index].get_or_init(|| {
        Issuers::verify(
            roots::ark(product),
            compiled_in_intermediate(product, leaf_kind),
            leaf_kind.issuer_role(),
        )
    })
}

fn check_validity(cert: &ParsedCert<'_>, now: UnixTime) -> Result<(UnixTime, UnixTime), Error> {
    let validity = &cert.cert.tbs_certificate.validity;
    let not_before = UnixTime::from(validity.not_before);
    let not_after = UnixTime::from(validity.not_after);
    if now < not_before {
        return Err(Error::CertificateNotYetValid {
            role: cert.role,
            not_before,
            now,
        });
    }
    if now > not_after {
        return Err(Error::CertificateExpired {
            role: cert.role,
            not_after,
            now,
        });
    }
    Ok((not_before, not_after))
}

/// Rejects duplicate extensions and unknown critical ones; returns (basic constraints, key usage).
fn standard_extensions(
    cert: &ParsedCert<'_>,
) -> Result<(Option<BasicConstraints>, Option<KeyUsage>), Error> {
    let role = cert.role;
    let mut seen: Vec<ObjectIdentifier> = Vec::new();
    let mut basic = None;
    let mut usage = None;
    for ext in cert.cert.tbs_certificate.extensions.iter().flatten() {
        if seen.contains(&ext.extn_id) {
            return Err(Error::DuplicateExtension {
                role,
                oid: ext.extn_id.to_string(),
            });
        }
        seen.push(ext.extn_id);
        let malformed = |e: der::Error| Error::MalformedExtension {
            role,
            oid: ext.extn_id.to_string(),
            reason: e.to_string(),
        };
        if ext.extn_id == BASIC_CONSTRAINTS {
            basic = Some(BasicConstraints::from_der(ext.extn_value.as_bytes()).map_err(malformed)?);
        } else if ext.extn_id == KEY_USAGE {
            usage = Some(KeyUsage::from_der(ext.extn_value.as_bytes()).map_err(malformed)?);
        } else if ext.critical {
            return Err(Error::UnknownCriticalExtension {
                role,
                oid: ext.extn_id.to_string(),
            });
        }
    }
    Ok((basic, usage))
}

fn check_ca(cert: &ParsedCert<'_>, crl_sign: bool) -> Result<(), Error> {
    let role = cert.role;
    let (basic, usage) = standard_extensions(cert)?;
    if !basic.is_some_and(|b| b.ca) {
        return Err(Error::NotCa { role });
    }
    let usage = usage.ok_or(Error::KeyUsage {
        role,
        missing: "keyCertSign",
    })?;
    if !usage.key_cert_sign() {
        return Err(Error::KeyUsage {
            role,
            missing: "keyCertSign",
        });
    }
    if crl_sign && !usage.crl_sign() {
        return Err(Error::KeyUsage {
            role,
            missing: "cRLSign",
        });
    }
    Ok(())
}

fn check_common_name(cert: &ParsedCert<'_>, expected: &str) -> Result<(), Error> {
    let found = common_name(cert.subject()).unwrap_or_default();
    if found == expected {
        Ok(())
    } else {
        Err(Error::UnexpectedCommonName {
            role: cert.role,
            expected: expected.to_owned(),
            found,
        })
    }
}

/// The uncompressed P-384 point of a leaf certificate.
pub(crate) fn leaf_point<'c>(cert: &'c ParsedCert<'_>) -> Result<&'c [u8], Error> {
    let role = cert.role;
    let spki = &cert.cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(SECP384R1) {
        let found = match curve {
            Some(curve) => format!("{} on {curve}", spki.algorithm.oid),
            None => spki.algorithm.oid.to_string(),
        };
        return Err(Error::LeafKeyNotP384 { role, found });
    }
    match spki.subject_public_key.as_bytes() {
        Some(point) if point.len() == 97 && point.first() == Some(&4) => Ok(point),
        _ => Err(Error::LeafKeyNotP384 {
            role,
            found: "a malformed P-384 point".into(),
        }),
    }
}

/// The AMD extensions of a VCEK or VLEK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmdExtensions {
    /// structVersion (0 on Milan/Genoa, 1 on Turin).
    pub struct_version: Option<u64>,
    /// productName, e.g. `Milan-B0`, `Genoa`, `Turin`.
    pub product_name: Option<String>,
    /// blSPL.
    pub bl_spl: Option<u8>,
    /// teeSPL.
    pub tee_spl: Option<u8>,
    /// snpSPL.
    pub snp_spl: Option<u8>,
    /// ucodeSPL.
    pub ucode_spl: Option<u8>,
    /// fmcSPL (Turin).
    pub fmc_spl: Option<u8>,
    /// The reserved spl_4..spl_7 values, where present.
    pub reserved_spl: [Option<u8>; 4],
    /// hwID: the chip id (64 bytes, 8 on Turin). VCEK only.
    pub hw_id: Option<Vec<u8>>,
    /// csp_id, e.g. `CN=cc-us-east-2.amazonaws.com`. VLEK only.
    pub csp_id: Option<String>,
}

impl AmdExtensions {
    /// Parses the AMD extensions of a DER certificate (no signature check; for diagnostics and
    /// fuzzing). Other extensions are ignored.
    ///
    /// # Errors
    /// [`Error::CertificateParse`], [`Error::MalformedExtension`], [`Error::DuplicateExtension`].
    pub fn from_certificate_der(der: &[u8], role: CertRole) -> Result<Self, Error> {
        Self::from_cert(&ParsedCert::parse(der, role)?)
    }

    fn from_cert(cert: &ParsedCert<'_>) -> Result<Self, Error> {
        let role = cert.role;
        let mut out = Self::default();
        let mut seen: Vec<ObjectIdentifier> = Vec::new();
        for ext in cert.cert.tbs_certificate.extensions.iter().flatten() {
            let id = ext.extn_id;
            if seen.contains(&id) {
                return Err(Error::DuplicateExtension {
                    role,
                    oid: id.to_string(),
                });
            }
            seen.push(id);
            let value = ext.extn_value.as_bytes();
            let malformed = |reason: String| Error::MalformedExtension {
                role,
                oid: id.to_string(),
                reason,
            };
            let spl = || {
                u8::from_der(value)
                    .map_err(|e| malformed(format!("SPL must be an INTEGER 0..=255: {e}")))
            };
            match id {
                oid::STRUCT_VERSION => {
                    out.struct_version =
                        Some(u64::from_der(value).map_err(|e| malformed(e.to_string()))?);
                }
                oid::PRODUCT_NAME => {
                    let name =
                        Ia5StringRef::from_der(value).map_err(|e| malformed(e.to_string()))?;
                    out.product_name = Some(name.as_str().to_owned());
                }
                oid::BL_SPL => out.bl_spl = Some(spl()?),
                oid::TEE_SPL => out.tee_spl = Some(spl()?),
                oid::SNP_SPL => out.snp_spl = Some(spl()?),
                oid::UCODE_SPL => out.ucode_spl = Some(spl()?),
                oid::FMC_SPL => out.fmc_spl = Some(spl()?),
                oid::SPL_4 => out.reserved_spl[0] = Some(spl()?),
                oid::SPL_5 => out.reserved_spl[1] = Some(spl()?),
                oid::SPL_6 => out.reserved_spl[2] = Some(spl()?),
                oid::SPL_7 => out.reserved_spl[3] = Some(spl()?),
                oid::HW_ID => out.hw_id = Some(unwrap_hw_id(value).to_vec()),
                oid::CSP_ID => {
                    let csp =
                        Ia5StringRef::from_der(value).map_err(|e| malformed(e.to_string()))?;
                    out.csp_id = Some(csp.as_str().to_owned());
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// hwID is the raw chip id; accept it wrapped in an OCTET STRING too (some tools do), but only
/// when the content has a valid hwID length, so a raw value is never misread.
fn unwrap_hw_id(value: &[u8]) -> &[u8] {
    match der::asn1::OctetStringRef::from_der(value) {
        Ok(inner) if matches!(inner.as_bytes().len(), 8 | 64) => inner.as_bytes(),
        _ => value,
    }
}

/// Whether the anchor was AMD's or a caller-pinned root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnchorKind {
    /// A compiled-in AMD ARK.
    Amd,
    /// A caller-pinned (simulated) ARK.
    Pinned,
}

/// A chain that verified: the leaf key and everything needed for binding and CRL checks.
#[derive(Clone)]
pub struct VerifiedChain {
    anchor: TrustAnchor,
    leaf_kind: LeafKind,
    leaf_key: LeafKey,
    extensions: AmdExtensions,
    ark_key: ParsedPublicKey,
    ark_subject: Name,
    intermediate_serial: Vec<u8>,
    leaf_serial: Vec<u8>,
    not_before: UnixTime,
    not_after: UnixTime,
}

impl fmt::Debug for VerifiedChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedChain")
            .field("anchor", &self.anchor)
            .field("leaf_kind", &self.leaf_kind)
            .field("extensions", &self.extensions)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl VerifiedChain {
    /// The anchor the chain verified against.
    #[must_use]
    pub fn anchor(&self) -> TrustAnchor {
        self.anchor
    }
    /// AMD or pinned.
    #[must_use]
    pub fn anchor_kind(&self) -> AnchorKind {
        if self.anchor.is_amd() {
            AnchorKind::Amd
        } else {
            AnchorKind::Pinned
        }
    }
    /// The product of the chain.
    #[must_use]
    pub fn product(&self) -> Product {
        self.anchor.product()
    }
    /// VCEK or VLEK.
    #[must_use]
    pub fn leaf_kind(&self) -> LeafKind {
        self.leaf_kind
    }
    /// The leaf's public key.
    #[must_use]
    pub fn leaf_key(&self) -> &LeafKey {
        &self.leaf_key
    }
    /// The leaf's AMD extensions.
    #[must_use]
    pub fn extensions(&self) -> &AmdExtensions {
        &self.extensions
    }
    /// Latest notBefore of the three certificates.
    #[must_use]
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }
    /// Earliest notAfter of the three certificates.
    #[must_use]
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }
    /// Checks that `now` lies within every certificate's validity (for cached chains).
    ///
    /// # Errors
    /// [`Error::CertificateNotYetValid`], [`Error::CertificateExpired`] (role: the leaf).
    pub fn check_time(&self, now: UnixTime) -> Result<(), Error> {
        let role = self.leaf_kind.role();
        if now < self.not_before {
            return Err(Error::CertificateNotYetValid {
                role,
                not_before: self.not_before,
                now,
            });
        }
        if now > self.not_after {
            return Err(Error::CertificateExpired {
                role,
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }
}

fn product_name_matches(name: &str, product: Product) -> bool {
    let base = product.name();
    name == base
        || name
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Verifies ARK → ASK/ASVK → VCEK/VLEK at `now`.
///
/// Checks: the ARK is the anchor's (pinned DER/SPKI for AMD; pinned SHA-256 otherwise) and
/// self-signed; every signature is RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48 and verifies; issuer
/// names chain; ARK and intermediate are CAs with keyCertSign (ARK also cRLSign); the leaf is
/// not a CA and has an EC P-384 key; every validity period contains `now`; no unknown critical
/// extension; for AMD anchors the common names are AMD's (`SEV-{product}`, `SEV-VLEK-{product}`,
/// `SEV-VCEK`, `SEV-VLEK`); the leaf's productName names the anchor's product; a VCEK has a hwID,
/// a VLEK a csp_id and no hwID.
///
/// The compiled-in ARK and ASK/ASVK of an AMD anchor (also when presented byte for byte) are
/// parsed and verified once per process; their validity is checked on every call.
///
/// # Errors
/// The specific [`Error`] of the first failing check.
pub fn verify_chain(
    anchor: &TrustAnchor,
    leaf_kind: LeafKind,
    certs: &ChainCertificates<'_>,
    now: UnixTime,
) -> Result<VerifiedChain, Error> {
    let product = anchor.product();
    let presented;
    let issuers = match resolve_issuers(anchor, leaf_kind, certs.ark, certs.intermediate)? {
        ResolvedIssuers::CompiledIn(issuers) => issuers,
        ResolvedIssuers::Presented(issuers) => {
            presented = issuers;
            &presented
        }
    };
    let (ark, intermediate) = (&issuers.ark, &issuers.intermediate);
    let (mut not_before, mut not_after) = check_validity(ark, now)?;
    let (nb, na) = check_validity(intermediate, now)?;
    not_before = not_before.max(nb);
    not_after = not_after.min(na);

    let leaf = ParsedCert::parse(certs.leaf, leaf_kind.role())?;
    verify_issued_by(&leaf, intermediate, &issuers.intermediate_key)?;
    let (basic, _) = standard_extensions(&leaf)?;
    if basic.is_some_and(|b| b.ca) {
        return Err(Error::LeafIsCa { role: leaf.role });
    }
    let (nb, na) = check_validity(&leaf, now)?;
    not_before = not_before.max(nb);
    not_after = not_after.min(na);
    let point = leaf_point(&leaf)?;

    if anchor.is_amd() {
        let p = product.name();
        match leaf_kind {
            LeafKind::Vcek => {
                check_common_name(intermediate, &format!("SEV-{p}"))?;
                check_common_name(&leaf, "SEV-VCEK")?;
            }
            LeafKind::Vlek => {
                check_common_name(intermediate, &format!("SEV-VLEK-{p}"))?;
                check_common_name(&leaf, "SEV-VLEK")?;
            }
        }
    }

    let extensions = AmdExtensions::from_cert(&leaf)?;
    match &extensions.product_name {
        Some(name) if product_name_matches(name, product) => {}
        found => {
            return Err(Error::ProductNameMismatch {
                leaf: leaf_kind,
                expected: product,
                found: found.clone(),
            });
        }
    }
    match leaf_kind {
        LeafKind::Vcek if extensions.hw_id.is_none() => return Err(Error::MissingHwId),
        LeafKind::Vlek if extensions.hw_id.is_some() => {
            return Err(Error::VlekExtensions {
                reason: "carries a hwID extension",
            });
        }
        LeafKind::Vlek if extensions.csp_id.is_none() => {
            return Err(Error::VlekExtensions {
                reason: "lacks the csp_id extension",
            });
        }
        _ => {}
    }

    Ok(VerifiedChain {
        anchor: *anchor,
        leaf_kind,
        leaf_key: LeafKey::from_point(leaf_kind, product, point)?,
        extensions,
        ark_key: issuers.ark_key.clone(),
        ark_subject: ark.subject().clone(),
        intermediate_serial: normalize_serial(
            intermediate.cert.tbs_certificate.serial_number.as_bytes(),
        ),
        leaf_serial: normalize_serial(leaf.cert.tbs_certificate.serial_number.as_bytes()),
        not_before,
        not_after,
    })
}

/// The issuers of a chain: the compiled-in ones of an AMD anchor (verified once per process),
/// or the presented ones, verified now.
// Lives on the stack for one verification; boxing would add an allocation per chain.
#[allow(clippy::large_enum_variant)]
enum ResolvedIssuers<'a> {
    CompiledIn(&'static Issuers<'static>),
    Presented(Issuers<'a>),
}

fn resolve_issuers<'a>(
    anchor: &TrustAnchor,
    leaf_kind: LeafKind,
    ark: Option<&'a [u8]>,
    intermediate: Option<&'a [u8]>,
) -> Result<ResolvedIssuers<'a>, Error> {
    let product = anchor.product();
    let ark_der = resolve_ark(anchor, ark)?;
    let intermediate_role = leaf_kind.issuer_role();
    let intermediate_der = match (intermediate, anchor) {
        (Some(der), _) => der,
        (None, TrustAnchor::Amd(p)) => compiled_in_intermediate(*p, leaf_kind),
        (None, TrustAnchor::Pinned { .. }) => {
            return Err(Error::MissingCertificate {
                role: intermediate_role,
                product,
            });
        }
    };
    match anchor {
        TrustAnchor::Amd(p) if intermediate_der == compiled_in_intermediate(*p, leaf_kind) => {
            compiled_in_issuers(*p, leaf_kind)
                .as_ref()
                .map(ResolvedIssuers::CompiledIn)
                .map_err(Clone::clone)
        }
        _ => Issuers::verify(ark_der, intermediate_der, intermediate_role)
            .map(ResolvedIssuers::Presented),
    }
}

/// An ARK and ASK (or ASVK) that verified against an anchor, without a leaf: a KDS
/// `cert_chain` answer checked before it is used or cached, and what a CRL is checked with
/// ([`verify_crl_with_issuers`]).
#[derive(Clone)]
pub struct VerifiedIssuers {
    anchor: TrustAnchor,
    leaf_kind: LeafKind,
    ark_key: ParsedPublicKey,
    ark_subject: Name,
    intermediate_serial: Vec<u8>,
}

impl fmt::Debug for VerifiedIssuers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIssuers")
            .field("anchor", &self.anchor)
            .field("leaf_kind", &self.leaf_kind)
            .finish_non_exhaustive()
    }
}

impl VerifiedIssuers {
    /// The anchor the issuers verified against.
    #[must_use]
    pub fn anchor(&self) -> TrustAnchor {
        self.anchor
    }

    /// The kind of leaf the intermediate issues (VCEK: ASK, VLEK: ASVK).
    #[must_use]
    pub fn leaf_kind(&self) -> LeafKind {
        self.leaf_kind
    }

    /// The intermediate's serial number (big-endian, no leading zeros), as a CRL lists it.
    #[must_use]
    pub fn intermediate_serial(&self) -> &[u8] {
        &self.intermediate_serial
    }
}

/// Verifies ARK → ASK/ASVK at `now`, as [`verify_chain`] does for the issuers of a leaf: the
/// ARK is the anchor's and self-signed, the intermediate is signed by it, both are CAs within
/// their validity; for an AMD anchor the intermediate's common name is AMD's.
///
/// # Errors
/// The specific [`Error`] of the first failing check.
pub fn verify_issuers(
    anchor: &TrustAnchor,
    leaf_kind: LeafKind,
    ark: Option<&[u8]>,
    intermediate: Option<&[u8]>,
    now: UnixTime,
) -> Result<VerifiedIssuers, Error> {
    let presented;
    let issuers = match resolve_issuers(anchor, leaf_kind, ark, intermediate)? {
        ResolvedIssuers::CompiledIn(issuers) => issuers,
        ResolvedIssuers::Presented(issuers) => {
            presented = issuers;
            &presented
        }
    };
    check_validity(&issuers.ark, now)?;
    check_validity(&issuers.intermediate, now)?;
    if anchor.is_amd() {
        let p = anchor.product().name();
        let expected = match leaf_kind {
            LeafKind::Vcek => format!("SEV-{p}"),
            LeafKind::Vlek => format!("SEV-VLEK-{p}"),
        };
        check_common_name(&issuers.intermediate, &expected)?;
    }
    Ok(VerifiedIssuers {
        anchor: *anchor,
        leaf_kind,
        ark_key: issuers.ark_key.clone(),
        ark_subject: issuers.ark.subject().clone(),
        intermediate_serial: normalize_serial(
            issuers
                .intermediate
                .cert
                .tbs_certificate
                .serial_number
                .as_bytes(),
        ),
    })
}

fn resolve_ark<'a>(anchor: &TrustAnchor, presented: Option<&'a [u8]>) -> Result<&'a [u8], Error> {
    match anchor {
        TrustAnchor::Amd(product) => {
            let pinned = roots::ark(*product);
            if let Some(given) = presented
                && given != pinned
                && !same_spki(given, pinned)
            {
                return Err(Error::UntrustedRoot {
                    product: *product,
                    expected_sha256: sha256(pinned),
                    found_sha256: sha256(given),
                });
            }
            Ok(pinned)
        }
        TrustAnchor::Pinned {
            ark_der_sha256,
            product,
        } => {
            if let Some(amd) = roots::PRODUCTS
                .into_iter()
                .find(|p| sha256(roots::ark(*p)) == *ark_der_sha256)
            {
                return Err(Error::PinnedAnchorIsAmdRoot {
                    product: amd,
                    sha256: *ark_der_sha256,
                });
            }
            let given = presented.ok_or(Error::MissingCertificate {
                role: CertRole::Ark,
                product: *product,
            })?;
            let found = sha256(given);
            if found != *ark_der_sha256 {
                return Err(Error::UntrustedRoot {
                    product: *product,
                    expected_sha256: *ark_der_sha256,
                    found_sha256: found,
                });
            }
            Ok(given)
        }
    }
}

fn same_spki(a: &[u8], b: &[u8]) -> bool {
    match (
        ParsedCert::parse(a, CertRole::Ark),
        ParsedCert::parse(b, CertRole::Ark),
    ) {
        (Ok(a), Ok(b)) => a.spki_der() == b.spki_der() && a.subject() == b.subject(),
        _ => false,
    }
}

/// Big-endian serial without leading zero bytes (zero is `[]`).
fn normalize_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default().to_vec()
}

/// How the report's CHIP_ID was bound to the leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChipBinding {
    /// CHIP_ID equals the VCEK's hwID.
    Matched,
    /// CHIP_ID is all zero (MASK_CHIP_ID); the VCEK's key is still chip-specific, so the
    /// signature binds the report to the chip, but the report does not name it.
    Masked,
    /// VLEK-signed: VLEKs carry no hwID.
    NotApplicable,
}

/// Binds a report to its leaf (§2.3 of the SNP reference): SIGNING_KEY names the leaf's kind;
/// REPORTED_TCB equals the leaf's SPL extensions component by component (fmcSPL on Turin; fmcSPL
/// absent and reserved SPLs zero on Milan/Genoa); for a VCEK, hwID equals CHIP_ID (64 bytes, or
/// the first 8 on Turin with the rest zero) unless CHIP_ID is all zero.
///
/// Takes the raw report values so it can be tested on crafted inputs; [`crate::verify_report`]
/// passes the values of the verified report.
///
/// # Errors
/// [`Error::SignerKindMismatch`], [`Error::MissingTcbExtension`], [`Error::TcbMismatch`],
/// [`Error::MalformedExtension`], [`Error::MissingHwId`], [`Error::HwIdLength`],
/// [`Error::ChipIdMismatch`].
pub fn check_binding(
    leaf_kind: LeafKind,
    extensions: &AmdExtensions,
    product: Product,
    signing_key: SigningKey,
    reported_tcb_raw: &[u8; 8],
    chip_id: &[u8; 64],
) -> Result<ChipBinding, Error> {
    if LeafKind::from_signing_key(signing_key) != Some(leaf_kind) {
        return Err(Error::SignerKindMismatch {
            report: signing_key,
            leaf: leaf_kind,
        });
    }
    let role = leaf_kind.role();
    let reported = TcbVersion::from_bytes(reported_tcb_raw, product);
    let required = |component: TcbComponent, value: Option<u8>| {
        value.ok_or(Error::MissingTcbExtension {
            leaf: leaf_kind,
            component,
        })
    };
    match (product, extensions.fmc_spl) {
        (Product::Turin, fmc) => {
            let fmc = required(TcbComponent::Fmc, fmc)?;
            compare(leaf_kind, TcbComponent::Fmc, fmc, reported.fmc.unwrap_or(0))?;
        }
        (_, Some(_)) => {
            return Err(Error::MalformedExtension {
                role,
                oid: oid::FMC_SPL.to_string(),
                reason: format!("fmcSPL is not defined for {}", product.name()),
            });
        }
        (_, None) => {}
    }
    for (component, cert, report) in [
        (
            TcbComponent::Bootloader,
            extensions.bl_spl,
            reported.bootloader,
        ),
        (TcbComponent::Tee, extensions.tee_spl, reported.tee),
        (TcbComponent::Snp, extensions.snp_spl, reported.snp),
        (
            TcbComponent::Microcode,
            extensions.ucode_spl,
            reported.microcode,
        ),
    ] {
        compare(leaf_kind, component, required(component, cert)?, report)?;
    }
    for (index, value) in extensions.reserved_spl.iter().enumerate() {
        if let Some(v @ 1..) = value {
            return Err(Error::MalformedExtension {
                role,
                oid: format!("1.3.6.1.4.1.3704.1.3.{}", index + 4),
                reason: format!("reserved SPL must be 0, found {v}"),
            });
        }
    }

    match leaf_kind {
        LeafKind::Vlek => Ok(ChipBinding::NotApplicable),
        LeafKind::Vcek => {
            let hw_id = extensions.hw_id.as_deref().ok_or(Error::MissingHwId)?;
            let expected_len = if product == Product::Turin { 8 } else { 64 };
            if hw_id.len() != expected_len {
                return Err(Error::HwIdLength {
                    product,
                    expected: expected_len,
                    found: hw_id.len(),
                });
            }
            if chip_id.iter().all(|&b| b == 0) {
                return Ok(ChipBinding::Masked);
            }
            let (prefix, rest) = chip_id.split_at(expected_len);
            if prefix != hw_id || rest.iter().any(|&b| b != 0) {
                return Err(Error::ChipIdMismatch {
                    expected: hw_id.to_vec(),
                    found: chip_id.to_vec(),
                });
            }
            Ok(ChipBinding::Matched)
        }
    }
}

fn compare(leaf: LeafKind, component: TcbComponent, expected: u8, found: u8) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::TcbMismatch {
            leaf,
            component,
            expected,
            found,
        })
    }
}

/// Whether a missing or unusable CRL fails the verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrlPolicy {
    /// Fail closed: a CRL must be supplied, verify with the ARK and be fresh.
    Required,
    /// Fail open: use the CRL if it is supplied and usable, otherwise report
    /// [`RevocationStatus::NotChecked`]. A revoked certificate fails in both modes.
    BestEffort,
}

/// Why revocation was not checked (only under [`CrlPolicy::BestEffort`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotCheckedReason {
    /// No CRL was supplied.
    NoCrl,
    /// A CRL was supplied but could not be used (bad signature, stale, unparsable, ...).
    Unusable(Box<Error>),
}

/// The outcome of the revocation check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevocationStatus {
    /// An ARK-signed, fresh CRL was checked; no certificate of the chain is revoked.
    Checked {
        /// The CRL's thisUpdate.
        this_update: UnixTime,
        /// The CRL's nextUpdate.
        next_update: UnixTime,
    },
    /// Revocation was not checked.
    NotChecked {
        /// Why.
        reason: NotCheckedReason,
    },
}

/// A CRL whose signature and freshness verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCrl {
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
    /// Revoked serial numbers (big-endian, no leading zeros).
    pub revoked_serials: Vec<Vec<u8>>,
}

/// Parses an ARK-signed CRL (DER) and checks its RSASSA-PSS parameters, signature with the
/// chain's ARK, issuer name and freshness (thisUpdate ≤ now ≤ nextUpdate).
///
/// # Errors
/// [`Error::CrlParse`], [`Error::CertificateSignatureAlgorithm`], [`Error::PssParameters`],
/// [`Error::SignatureAlgorithmMismatch`], [`Error::CrlIssuerMismatch`],
/// [`Error::CertificateSignatureInvalid`], [`Error::CrlNotYetValid`], [`Error::CrlNoNextUpdate`],
/// [`Error::CrlStale`].
pub fn verify_crl(der: &[u8], chain: &VerifiedChain, now: UnixTime) -> Result<VerifiedCrl, Error> {
    verify_crl_signed_by(der, &chain.ark_key, &chain.ark_subject, now)
}

/// [`verify_crl`] with the issuers of a `cert_chain` ([`verify_issuers`]) instead of a whole
/// chain: what a collateral client checks before it caches a CRL.
///
/// # Errors
/// As [`verify_crl`].
pub fn verify_crl_with_issuers(
    der: &[u8],
    issuers: &VerifiedIssuers,
    now: UnixTime,
) -> Result<VerifiedCrl, Error> {
    verify_crl_signed_by(der, &issuers.ark_key, &issuers.ark_subject, now)
}

fn verify_crl_signed_by(
    der: &[u8],
    ark_key: &ParsedPublicKey,
    ark_subject: &Name,
    now: UnixTime,
) -> Result<VerifiedCrl, Error> {
    let parse_err = |e: der::Error| Error::CrlParse {
        reason: e.to_string(),
    };
    let crl = CertificateList::from_der(der).map_err(parse_err)?;
    let tbs = outer_first_tlv(der).map_err(parse_err)?;
    check_pss(&crl.signature_algorithm, CertRole::Crl)?;
    if crl.tbs_cert_list.signature != crl.signature_algorithm {
        return Err(Error::SignatureAlgorithmMismatch {
            role: CertRole::Crl,
        });
    }
    if crl.tbs_cert_list.issuer != *ark_subject {
        return Err(Error::CrlIssuerMismatch {
            expected: name_string(ark_subject),
            found: name_string(&crl.tbs_cert_list.issuer),
        });
    }
    let invalid = Error::CertificateSignatureInvalid {
        role: CertRole::Crl,
        issuer: CertRole::Ark,
    };
    let signature = crl.signature.as_bytes().ok_or_else(|| invalid.clone())?;
    ark_key.verify_sig(tbs, signature).map_err(|_| invalid)?;
    let this_update = UnixTime::from(crl.tbs_cert_list.this_update);
    if now < this_update {
        return Err(Error::CrlNotYetValid { this_update, now });
    }
    let next_update = UnixTime::from(
        crl.tbs_cert_list
            .next_update
            .ok_or(Error::CrlNoNextUpdate)?,
    );
    if now > next_update {
        return Err(Error::CrlStale { next_update, now });
    }
    let revoked_serials = crl
        .tbs_cert_list
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| normalize_serial(r.serial_number.as_bytes()))
        .collect();
    Ok(VerifiedCrl {
        this_update,
        next_update,
        revoked_serials,
    })
}

/// Applies `policy` to an optional CRL for `chain`: a revoked intermediate or leaf always fails;
/// a missing or unusable CRL fails under [`CrlPolicy::Required`] and is reported as
/// [`RevocationStatus::NotChecked`] under [`CrlPolicy::BestEffort`].
///
/// # Errors
/// [`Error::Revoked`], [`Error::CrlMissing`], or (Required) the error of [`verify_crl`].
pub fn check_revocation(
    crl: Option<&[u8]>,
    policy: CrlPolicy,
    chain: &VerifiedChain,
    now: UnixTime,
) -> Result<RevocationStatus, Error> {
    let Some(der) = crl else {
        return match policy {
            CrlPolicy::Required => Err(Error::CrlMissing {
                product: chain.product(),
            }),
            CrlPolicy::BestEffort => Ok(RevocationStatus::NotChecked {
                reason: NotCheckedReason::NoCrl,
            }),
        };
    };
    let verified = match (verify_crl(der, chain, now), policy) {
        (Ok(v), _) => v,
        (Err(e), CrlPolicy::Required) => return Err(e),
        (Err(e), CrlPolicy::BestEffort) => {
            return Ok(RevocationStatus::NotChecked {
                reason: NotCheckedReason::Unusable(Box::new(e)),
            });
        }
    };
    revocation_of(&verified, chain)
}

pub(crate) fn revocation_of(
    crl: &VerifiedCrl,
    chain: &VerifiedChain,
) -> Result<RevocationStatus, Error> {
    for (role, serial) in [
        (chain.leaf_kind.issuer_role(), &chain.intermediate_serial),
        (chain.leaf_kind.role(), &chain.leaf_serial),
    ] {
        if crl.revoked_serials.contains(serial) {
            let mut shown = serial.clone();
            if shown.is_empty() {
                shown.push(0);
            }
            return Err(Error::Revoked {
                role,
                serial: shown,
            });
        }
    }
    Ok(RevocationStatus::Checked {
        this_update: crl.this_update,
        next_update: crl.next_update,
    })
}
