//! Shared test support of contrast-rs, used only as a dev-dependency (and by the load
//! generator in `benches/`):
//!
//! - [`apiserver`]: an in-process fake Kubernetes API server with the real server's semantics
//!   for ConfigMaps and pods (the ConfigMap store's tests, the Coordinator's HA test);
//! - [`process`]: real `coordinator` and `initializer` processes on loopback in simulated mode
//!   (launch, wait for a probe, SIGKILL and restart), and where the workspace's binaries are;
//! - [`net`]: free loopback ports and a raw HTTP/1.1 client for the plain-HTTP ports;
//! - [`atls_stub`]: a stand-in for a Coordinator over attested TLS that answers what a test
//!   tells it to;
//! - [`kds`]: a stand-in for AMD's KDS or a collateral proxy, with faults on demand;
//! - [`fixtures`]: one simulated SEV-SNP environment per test binary, workloads, owner keys,
//!   manifests, and convenience constructors of Coordinators on that environment;
//! - [`transit`]: an HTTPS client of the Coordinator's transit engine with a workload's mesh
//!   certificate;
//! - [`mesh`]: a deployment's CA and a workload's mesh certificate files without a Coordinator;
//! - [`skip`]: what a test does when the machine lacks a tool it needs.
//!
//! Test support fails loudly: where a test has nothing better to do with an error, these
//! functions panic with the reason (a failed test). The process harness returns errors where a
//! tool (the load generator) reports them instead.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod atls_stub;
pub mod fixtures;
pub mod kds;
pub mod mesh;
pub mod net;
pub mod process;
pub mod transit;

/// The environment variable that turns a skipped test into a failed one: CI sets it, since it
/// installs every tool the tests need, so a test that would skip there has lost its tool.
pub const NO_SKIP_ENV: &str = "CONTRAST_NO_SKIP";

/// A test that cannot run here (`reason`, e.g. a missing program) returns after this: it
/// prints `SKIPPED: reason`, or panics when [`NO_SKIP_ENV`] is set.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os(NO_SKIP_ENV).is_none(),
        "{reason}, and {NO_SKIP_ENV} is set (CI installs every tool the tests need)"
    );
    println!("SKIPPED: {reason}");
}
