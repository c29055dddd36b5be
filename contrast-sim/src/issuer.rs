//! [`SimulatedIssuer`]: the aTLS [`Issuer`] over the simulated platform.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use const_oid::ObjectIdentifier;
use contrast_attest::LeafKind;
use contrast_attest::atls::{IssueError, Issuer, SNP_ATTESTATION_OID};
use contrast_attest::evidence::AttestationBuilder;

use crate::{SimError, SimulatedGuest, SimulatedPlatform};

/// Supplies the CRL an issuer puts into each document (the simulation's KDS answer): called
/// once per document, so it should hand out a cached copy.
pub type CrlProvider = Arc<dyn Fn() -> Result<Vec<u8>, SimError> + Send + Sync>;

/// An issuer over the simulated platform: a report from `guest`, with the VCEK, ASK and
/// ARK, and the CRL if a [`CrlProvider`] is set, as a go-sev-guest `sevsnp.Attestation` under
/// [`SNP_ATTESTATION_OID`], exactly as real hardware would send it (a verifier trusts the
/// simulated ARK only where a reference value pins it).
pub struct SimulatedIssuer<P> {
    platform: P,
    guest: SimulatedGuest,
    crl: Option<CrlProvider>,
}

impl<P> SimulatedIssuer<P>
where
    P: Deref<Target = SimulatedPlatform>,
{
    /// An issuer for `guest` on `platform` (e.g. `Arc<SimulatedPlatform>` or
    /// `&'static SimulatedPlatform`).
    pub fn new(platform: P, guest: SimulatedGuest) -> Self {
        Self {
            platform,
            guest,
            crl: None,
        }
    }

    /// Puts the CRL from `crl` into every document (upstream's issuer sends it under the CRL
    /// extras key), so verifiers can require one.
    #[must_use]
    pub fn with_crl(mut self, crl: CrlProvider) -> Self {
        self.crl = Some(crl);
        self
    }

    /// Puts one CRL of the platform, revoking nothing, valid from an hour before `now` to a
    /// week after, into every document: for tests and tools that run a simulated attester
    /// without a simulated environment's revocation list.
    ///
    /// # Errors
    /// As [`SimulatedPlatform::crl`].
    pub fn with_fresh_crl(self, now: std::time::SystemTime) -> Result<Self, SimError> {
        let hour = std::time::Duration::from_secs(60 * 60);
        let crl = self.platform.crl(&crate::CrlContents {
            revoked: Vec::new(),
            this_update: now.checked_sub(hour).unwrap_or(now),
            next_update: now + 7 * 24 * hour,
            number: 1,
        })?;
        Ok(self.with_crl(Arc::new(move || Ok(crl.clone()))))
    }

    /// The guest whose reports this issues.
    pub fn guest(&self) -> &SimulatedGuest {
        &self.guest
    }
}

impl<P> fmt::Debug for SimulatedIssuer<P>
where
    P: Deref<Target = SimulatedPlatform>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedIssuer")
            .field("platform", &*self.platform)
            .field("host_data", &hex::encode(self.guest.host_data))
            .field("crl", &self.crl.is_some())
            .finish_non_exhaustive()
    }
}

impl<P> Issuer for SimulatedIssuer<P>
where
    P: Deref<Target = SimulatedPlatform> + Send + Sync,
{
    fn oid(&self) -> ObjectIdentifier {
        SNP_ATTESTATION_OID
    }

    fn issue(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, IssueError> {
        let evidence = self
            .guest
            .evidence(&self.platform, report_data)
            .map_err(|e| IssueError::Simulated(Box::new(e)))?;
        let crl = self
            .crl
            .as_ref()
            .map(|provider| provider())
            .transpose()
            .map_err(|e| IssueError::Simulated(Box::new(e)))?;
        AttestationBuilder::new(&evidence.report)
            .leaf(LeafKind::Vcek, &evidence.vcek_der)
            .intermediate(Some(&evidence.ask_der))
            .ark(Some(&evidence.ark_der))
            .crl(crl.as_deref())
            .encode()
            .map_err(|e| IssueError::Platform {
                reason: e.to_string(),
            })
    }
}
