//! SEV-SNP report and AMD certificate chain verification.
//!
//! `contrast-attest` is the verifier of contrast-rs: the Coordinator runs it for every pod, data
//! owners run it for the Coordinator. Everything here is a pure function: no I/O, no clock, no
//! global state. The verification time, the certificates and the CRL are inputs.
//!
//! The pieces, in the order a verification uses them:
//!
//! - [`report`]: the 1184-byte SEV-SNP `ATTESTATION_REPORT`. [`report::UnverifiedReport`] exposes
//!   only the untrusted hints needed to find the signing key; [`report::Report`] (obtained by
//!   verifying the signature) exposes every field, typed and zero-copy.
//! - [`TcbVersion`]: the `TCB_VERSION` encodings of Milan/Genoa and Turin.
//! - [`chain`]: the pinned AMD roots (ARK, ASK, ASVK of Milan, Genoa and Turin), the
//!   ARK → ASK/ASVK → VCEK/VLEK chain (RSASSA-PSS SHA-384 only), the AMD certificate extensions,
//!   the binding of a report to its VCEK/VLEK and the CRL check.
//! - [`collateral`]: where certificates come from (extended-report certificate table, caller-loaded
//!   files, a fetcher closure), the cache of verified VCEKs, the AMD KDS URLs, and the entry point
//!   [`collateral::verify_report`].
//! - [`idblock`]: Contrast's ID block and the ID key recovered from its fixed signature, whose
//!   digest a report's `ID_KEY_DIGEST` must equal.
//! - [`Verifier`]: the appraisal. Built once from the manifest's SEV-SNP reference values
//!   (decoded once, [`SnpReference`]) and an explicit [`AppraisalPolicy`]; it verifies a report
//!   (the evidence) with its certificates and CRL (the endorsements) and checks its claims.
//! - [`evidence`]: the SEV-SNP evidence as upstream Contrast sends it, go-sev-guest's
//!   `sevsnp.Attestation`: the report ⇄ proto conversion, the builder issuers use and the
//!   parser verifiers use.
//! - [`atls`]: attested TLS for rustls (report data, responder certificates, nonce transport,
//!   per-connection client and server configs, [`AtlsValidator`] on top of a [`Verifier`]).
//! - [`Error`]: the single error type, classified by [`Error::kind`].
//!
//! The modules `report`, `chain`, `collateral`, `idblock`, `evidence` and `atls` are public for
//! their formats and building blocks; everything a verifier needs is re-exported here.
//!
//! The simulated AMD platform (its own ARK/ASK/VCEK hierarchy and real-format reports, trusted
//! only through [`TrustAnchor::Pinned`] with the ARK's fingerprint) is the crate `contrast-sim`;
//! the data owner's client (TCP, TLS and HTTP to a Coordinator) is the crate `contrast-sdk`.
#![forbid(unsafe_code)]

mod appraisal;
pub mod atls;
mod cert_table;
pub mod chain;
pub mod collateral;
mod error;
pub mod evidence;
mod hexfmt;
pub mod idblock;
pub mod report;
mod tcb;
mod time;

pub use appraisal::{
    Appraisal, AppraisalPolicy, ClaimChecks, DeniedBy, SnpReference, Verifier, VmplSet,
    check_claims, trust_anchor,
};
pub use atls::{AtlsClient, AtlsError, AtlsServer, AtlsValidator, Issuer, PeerSlot, VerifiedPeer};
pub use chain::{CrlPolicy, LeafKind, RevocationStatus, TrustAnchor};
pub use collateral::{VcekCache, VerifiedEvidence, verify_report};
pub use contrast_core::manifest::Product;
pub use error::{Error, ErrorKind};
pub use report::{Report, UnverifiedReport};
pub use tcb::{TcbComponent, TcbVersion};
pub use time::UnixTime;
