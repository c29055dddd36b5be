//! Key-value stores with compare-and-swap and the signed manifest history.
//!
//! This crate is scaffolding until its issue lands; see `ARCHITECTURE.md`.
#![forbid(unsafe_code)]
