//! Issuers: what produces the attestation document for 64 bytes of report data.

use std::fmt;

use const_oid::ObjectIdentifier;

use super::error::IssueError;

/// Produces attestation documents binding `report_data` (a TEE's evidence with its collateral).
pub trait Issuer: fmt::Debug + Send + Sync {
    /// The OID of the certificate extension the document goes into (its type).
    fn oid(&self) -> ObjectIdentifier;
    /// A document whose report carries `report_data`.
    ///
    /// # Errors
    /// [`IssueError`] if the platform fails.
    fn issue(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, IssueError>;
}
