//! SEV-SNP report and AMD chain verification, appraisal and attested TLS.
//!
//! This crate is scaffolding until its issue lands; see `ARCHITECTURE.md`.
#![forbid(unsafe_code)]
