//! One simulated chip per initializer: the production `SimulatedIssuer` of contrast-attest
//! (its platform keeps each chip's VCEK key, so a report costs one ECDSA signature, as on a
//! chip), plus what the floor needs to time the chip's signature and its verification.

use std::sync::Arc;

use anyhow::{Context, Result};
use contrast_attest::atls::Issuer;
use contrast_sim::SimulatedGuest;
use contrast_tee::SimulatedEnvironment;
use x509_cert::der::Decode;

/// A simulated chip running one VM.
pub(crate) struct Chip {
    env: SimulatedEnvironment,
    guest: SimulatedGuest,
    issuer: Arc<dyn Issuer>,
}

impl std::fmt::Debug for Chip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chip").finish_non_exhaustive()
    }
}

impl Chip {
    /// A VM of `env` on chip `chip_id` whose HOST_DATA is `host_data`.
    pub(crate) fn new(
        env: &SimulatedEnvironment,
        chip_id: [u8; 64],
        host_data: [u8; 32],
    ) -> Result<Self> {
        let guest = env
            .guest(chip_id, host_data)
            .context("laying out the simulated guest")?;
        let issuer = env.issuer(guest.clone());
        Ok(Self {
            env: env.clone(),
            guest,
            issuer,
        })
    }

    /// The attestation issuer the initializer's aTLS client uses.
    pub(crate) fn issuer(&self) -> Arc<dyn Issuer> {
        Arc::clone(&self.issuer)
    }

    /// A signed report carrying `report_data` (a fresh ECDSA signature by the chip's VCEK).
    pub(crate) fn report(&self, report_data: &[u8; 64]) -> Result<Vec<u8>> {
        self.guest
            .report(self.env.platform(), report_data)
            .context("signing a report")
    }

    /// The chip's VCEK public key (uncompressed point), from its certificate.
    pub(crate) fn vcek_public_key(&self) -> Result<Vec<u8>> {
        let der = self
            .guest
            .vcek_der(self.env.platform())
            .context("issuing the chip's VCEK")?;
        let cert = x509_cert::Certificate::from_der(&der).context("parsing the VCEK")?;
        Ok(cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec())
    }
}
