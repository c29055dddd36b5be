//! Attestation on real AMD SEV-SNP guests (work in progress in this session: the kernel
//! interfaces are being wired up). Until then [`SnpIssuer::open`] fails with the reason, so a
//! binary started with `--tee snp` stops at startup instead of running unattested.

use std::path::Path;

use crate::TeeError;

/// Issues attestation documents from the SEV-SNP guest interface of the kernel.
#[derive(Debug)]
pub struct SnpIssuer {
    _private: (),
}

impl SnpIssuer {
    /// Opens the guest interface.
    ///
    /// # Errors
    /// [`TeeError::Snp`] always, in this build.
    pub fn open(_certs_dir: Option<&Path>) -> Result<Self, TeeError> {
        Err(TeeError::Snp(
            "reports from real SEV-SNP hardware are not supported by this build; use --tee simulated --sim-dir DIR"
                .into(),
        ))
    }
}

impl contrast_attest::atls::Issuer for SnpIssuer {
    fn oid(&self) -> const_oid::ObjectIdentifier {
        contrast_attest::atls::SNP_DOCUMENT_OID
    }

    fn issue(&self, _report_data: &[u8; 64]) -> Result<Vec<u8>, contrast_attest::atls::IssueError> {
        Err(contrast_attest::atls::IssueError::Platform {
            reason: "no sev-snp guest interface".into(),
        })
    }
}
