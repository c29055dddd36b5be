//! Contrast root, intermediate and mesh CA and workload certificate issuance.
//!
//! This crate is scaffolding until its issue lands; see `ARCHITECTURE.md`.
#![forbid(unsafe_code)]
