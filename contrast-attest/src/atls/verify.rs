//! The initiator's check of a responder certificate (upstream `processCertificate` +
//! `verifyEmbeddedReport`), as a pure function of the certificate, our nonce and the time.

use std::sync::Arc;

use super::cert::AtlsCertificate;
use super::error::{AtlsError, Hex};
use super::nonce::Nonce;
use super::{INSECURE_ATTESTATION_OID, SNP_ATTESTATION_OID, TDX_ATTESTATION_OID, report_data};
use crate::appraisal::Verifier;
use crate::chain::LeafKind;
use crate::evidence::SnpEvidence;
use crate::report::GuestPolicy;
use crate::time::UnixTime;
use crate::{Product, TcbVersion};

/// What an initiator (or a server, of its clients) requires of the peer's attestation: a
/// [`Verifier`] built once from the reference values, shared by every handshake.
#[derive(Clone, Debug)]
pub struct AtlsValidator {
    verifier: Arc<Verifier>,
}

impl AtlsValidator {
    /// A validator appraising with `verifier`.
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self::shared(Arc::new(verifier))
    }

    /// A validator appraising with a verifier shared with others.
    #[must_use]
    pub fn shared(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }

    /// The verifier (reference values, policy, cache).
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

/// An appraised peer, as owned data for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttestedPeer {
    /// The OID the document came under.
    pub document_oid: const_oid::ObjectIdentifier,
    /// Index of the matching entry in the reference values.
    pub matched_index: usize,
    /// HOST_DATA, for the caller to look up in the manifest's `Policies`.
    pub host_data: [u8; 32],
    /// MEASUREMENT.
    pub measurement: [u8; 48],
    /// REPORT_DATA (= SHA-512(peer SPKI ‖ our nonce)).
    pub report_data: [u8; 64],
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// The product.
    pub product: Product,
    /// REPORTED_TCB.
    pub reported_tcb: TcbVersion,
    /// LAUNCH_TCB.
    pub launch_tcb: TcbVersion,
    /// POLICY.
    pub guest_policy: GuestPolicy,
    /// VMPL.
    pub vmpl: u32,
    /// VCEK or VLEK.
    pub leaf_kind: LeafKind,
    /// The verified report. Private, so that [`AttestedPeer::report`] can hand out a
    /// [`crate::Report`] without checking the signature again: nobody outside this crate can
    /// put other bytes here.
    verified: VerifiedReportBytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct VerifiedReportBytes {
    bytes: Vec<u8>,
    product: Product,
    signing_key: crate::report::SigningKey,
}

impl AttestedPeer {
    /// The verified 1184-byte report.
    #[must_use]
    pub fn report_bytes(&self) -> &[u8] {
        &self.verified.bytes
    }

    /// The verified report, for everything not copied out above (e.g. the claims a mesh
    /// certificate carries). Its signature was checked during the handshake and is not checked
    /// again.
    ///
    /// # Errors
    /// Not expected: the bytes were parsed before. Returns the parse error if they somehow do
    /// not parse.
    pub fn report(&self) -> Result<crate::Report<'_>, crate::Error> {
        crate::report::Report::from_verified_parts(
            &self.verified.bytes,
            self.verified.product,
            self.verified.signing_key,
        )
    }
}

/// A peer certificate that passed aTLS verification.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedPeer {
    /// The peer's SubjectPublicKeyInfo DER (e.g. for owner-key authorization).
    pub spki_der: Vec<u8>,
    /// The appraisal; `None` when no validator was configured (nothing was appraised).
    pub attestation: Option<AttestedPeer>,
}

/// Verifies a responder certificate against `nonce` (the one *we* sent) at `now`:
/// parse, self-signature, validity; then, with a `validator`, exactly one attestation
/// extension with SEV-SNP evidence ([`SNP_ATTESTATION_OID`]), REPORT_DATA == SHA-512(SPKI ‖ nonce), and the validator's
/// [`Verifier::appraise`] of the report with
/// the document's collateral. Without a validator the certificate is only parsed and checked
/// (self-signature, validity) and nothing is appraised.
///
/// # Errors
/// The [`AtlsError`] of the first failed check; [`AtlsError::Appraisal`] wraps the appraisal's
/// [`crate::Error`].
pub fn verify_certificate(
    der: &[u8],
    nonce: &Nonce,
    now: UnixTime,
    validator: Option<&AtlsValidator>,
) -> Result<VerifiedPeer, AtlsError> {
    let cert = AtlsCertificate::parse(der)?;
    cert.check_validity(now.secs())?;
    let attestation = match validator {
        None => None,
        Some(validator) => Some(appraise_certificate(&cert, nonce, now, validator)?),
    };
    Ok(VerifiedPeer {
        spki_der: cert.spki_der,
        attestation,
    })
}

fn appraise_certificate(
    cert: &AtlsCertificate,
    nonce: &Nonce,
    now: UnixTime,
    validator: &AtlsValidator,
) -> Result<AttestedPeer, AtlsError> {
    let (oid, document) = cert
        .attestation
        .as_ref()
        .ok_or(AtlsError::NoAttestationExtension)?;
    validator.validate_evidence(oid, document, &report_data(&cert.spki_der, nonce), now)
}

impl AtlsValidator {
    /// Validates evidence outside a handshake: `document` of type `oid` (as in an aTLS
    /// certificate extension, or `/attest`'s `raw_attestation_doc` and `attestation_type`) must
    /// carry exactly `expected_report_data` and pass this validator's appraisal at `now`. aTLS
    /// calls it with `SHA-512(SPKI ‖ nonce)`; `/attest` clients with upstream's formula
    /// (`contrast_core::api::attest_report_data`).
    ///
    /// # Errors
    /// The [`AtlsError`] of the first failed check: an unsupported or unknown OID, evidence
    /// that does not decode, [`AtlsError::ReportDataMismatch`], or [`AtlsError::Appraisal`].
    pub fn validate_evidence(
        &self,
        oid: &const_oid::ObjectIdentifier,
        document: &[u8],
        expected_report_data: &[u8; 64],
        now: UnixTime,
    ) -> Result<AttestedPeer, AtlsError> {
        let unsupported = |name| AtlsError::UnsupportedDocumentOid {
            oid: oid.to_string(),
            name,
        };
        match *oid {
            SNP_ATTESTATION_OID => {}
            TDX_ATTESTATION_OID => return Err(unsupported("Intel TDX quote")),
            INSECURE_ATTESTATION_OID => return Err(unsupported("insecure development report")),
            _ => {
                return Err(AtlsError::UnknownDocumentOid {
                    oid: oid.to_string(),
                });
            }
        }
        let document = SnpEvidence::parse(document)?;
        let expected = *expected_report_data;
        // Checked before the (costly) chain verification; appraise checks it again, verified.
        let found = document.report_data();
        if found != expected {
            return Err(AtlsError::ReportDataMismatch {
                expected: Box::new(Hex(expected)),
                found: Box::new(Hex(found)),
            });
        }
        let appraisal = self
            .verifier
            .appraise(now, document.report(), &document, &expected)
            .map_err(AtlsError::Appraisal)?;
        let report = appraisal.report();
        Ok(AttestedPeer {
            document_oid: *oid,
            matched_index: appraisal.matched_index,
            host_data: appraisal.host_data,
            measurement: *report.measurement(),
            report_data: *report.report_data(),
            chip_id: *report.chip_id(),
            product: report.product(),
            reported_tcb: report.reported_tcb(),
            launch_tcb: report.launch_tcb(),
            guest_policy: report.policy(),
            vmpl: report.vmpl(),
            leaf_kind: appraisal.evidence.leaf_kind,
            verified: VerifiedReportBytes {
                bytes: report.as_bytes().to_vec(),
                product: report.product(),
                signing_key: report.signing_key(),
            },
        })
    }
}
