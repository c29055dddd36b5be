//! Shared fixtures for the benches (see `BENCHMARKS.md`).
#![forbid(unsafe_code)]
