//! The evidence API's rule (`/attest`): the Coordinator's evidence bound to the caller's nonce
//! and to the history and CAs it serves.

use contrast_attest::Issuer;
use contrast_core::api::{ATTEST_NONCE_SIZE, attest_report_data};
use contrast_store::Store;

use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::state::State;

/// The Coordinator's evidence for one `/attest` request.
#[derive(Debug)]
#[non_exhaustive]
pub struct Evidence {
    /// The attestation document, bound to the report data.
    pub document: Vec<u8>,
    /// The document's type (the OID of its certificate extension), as its arcs.
    pub attestation_type: Vec<u64>,
    /// The report data the document binds: upstream's formula over the nonce, the signed head,
    /// and the root and mesh CA certificates served with it.
    pub report_data: [u8; 64],
}

impl<S: Store, P> Coordinator<S, P> {
    /// The evidence for `nonce` under `state` (from [`Coordinator::manifests`]), from `issuer`
    /// (the TEE). Issuing may block on the TEE: call it where blocking is allowed.
    ///
    /// # Errors
    /// [`Error::Internal`] if the TEE fails.
    pub fn attest(
        &self,
        state: &State,
        nonce: &[u8; ATTEST_NONCE_SIZE],
        issuer: &dyn Issuer,
    ) -> Result<Evidence, Error> {
        let report_data = attest_report_data(
            nonce,
            &state.latest().transition_hash,
            state.root_ca().pem.as_bytes(),
            state.mesh_ca().pem.as_bytes(),
        );
        let document = issuer
            .issue(&report_data)
            .map_err(|e| Error::internal("getting an attestation report", e))?;
        Ok(Evidence {
            document,
            attestation_type: issuer.oid().arcs().map(u64::from).collect(),
            report_data,
        })
    }
}
