//! The data owner's SDK: attest a Contrast Coordinator over attested TLS, talk to its user API
//! (port 1313) and mesh API (port 7777), and check the manifest history it answers with.
//!
//! # How a data owner verifies a deployment
//!
//! A data owner holds the manifest it expects the deployment to run (from the workload owner,
//! or `contrast generate`). From its reference values and coordinator policies,
//! [`coordinator_validator`] builds the aTLS validator that accepts only a Coordinator whose
//! SEV-SNP report chains to AMD (or to the pinned simulated ARK), whose measurement, TCB and
//! guest policy match, and whose HOST_DATA is one of the manifest's coordinator policies.
//! [`CoordinatorClient::get_manifests`] connects with that validator, so the answer comes from
//! exactly the attested Coordinator; [`verify_deployment`] then rebuilds the transition chain
//! from the returned manifests, requires it to end in the head the Coordinator claims and every
//! policy of the newest manifest to be present. The data owner compares the newest manifest
//! with the expected one, keeps the head, and next time requires the new history to extend it
//! ([`VerifiedDeployment::check_extends`]); from then on it trusts the returned mesh CA for the
//! workloads' certificates. `examples/verify_deployment.rs` is this as a program (its tests run
//! it against a simulated Coordinator):
//!
//! ```no_run
//! # async fn demo(manifest: &contrast_core::manifest::Manifest) -> Result<(), Box<dyn std::error::Error>> {
//! use contrast_attest::AtlsClient;
//! use contrast_sdk::{CoordinatorClient, coordinator_validator, verify_deployment};
//!
//! let validator = coordinator_validator(manifest)?;
//! let client = CoordinatorClient::new("coordinator.example:1313", AtlsClient::new(validator));
//! let response = client.get_manifests().await?;
//! let deployment = verify_deployment(&response.value)?;
//! println!("head {}", hex::encode(deployment.latest_transition_hash));
//! # Ok(()) }
//! ```
//!
//! # Without a TLS connection: upstream's `/attest`
//!
//! Any Contrast Coordinator also serves its evidence over plain HTTP (port 1314):
//! [`fetch_attestation`] sends a fresh nonce and returns the raw answer, which can be saved;
//! [`validate_attestation`] checks it, then or later, with upstream's `ValidateAttestation`
//! semantics (the newest manifest gives the validator; the evidence binds the nonce, the
//! history's latest transition and both CAs). The caller then requires the newest manifest to
//! be the expected one ([`VerifiedDeployment::check_latest_is`]). `examples/verify_coordinator.rs`
//! does this online and offline.
//!
//! # One connection, one attestation
//!
//! [`CoordinatorClient::connect`] opens a TCP connection (with `TCP_NODELAY`), runs the aTLS
//! handshake with a fresh per-connection config from the [`AtlsClient`](contrast_attest::AtlsClient), and speaks gRPC (HTTP/2) over
//! it ([`Session`]). The server's certificate is appraised during the handshake; the result (the
//! [`VerifiedPeer`](contrast_attest::VerifiedPeer)) stays with the session, and every typed call made through it is answered by
//! exactly that appraised peer. The conveniences on [`CoordinatorClient`] open one connection per
//! call and return the value together with the peer ([`Attested`]).
//!
//! # Errors
//!
//! [`ClientError`] says at which stage a call failed: connecting, the handshake (our validator
//! refused the server: [`ClientError::Attestation`] with the failed check; anything else:
//! [`ClientError::Handshake`]), the server's refusal ([`ClientError::Api`], with the gRPC status code, our
//! fine-grained error code and the message), the gRPC exchange, or the response.
//! [`ClientError::is_retryable`] tells transient failures from final ones.
//!
//! # What a data owner can check, and what not
//!
//! [`verify_deployment`] and [`VerifiedDeployment::check_extends`] are pure (no network):
//!
//! - The attested channel is what binds a `GetManifests` response to the Coordinator: use a
//!   client whose validator came from [`coordinator_validator`] (the reference values of the
//!   manifest the data owner expects, HOST_DATA restricted to its coordinator policies).
//! - The transition chain is rebuilt from the manifests and must end in the head the
//!   Coordinator claims; every policy the newest manifest references must be present; the root
//!   and mesh CA must be PEM certificates.
//! - The head's signature is **not** checked: its key derives from the seed, which a data owner
//!   does not have. It protects the Coordinator's store, not the data owner.
//! - Older manifests are parsed but not judged: whether an earlier manifest was acceptable is
//!   the data owner's decision. Remembering the head seen last and requiring the next history to
//!   extend it ([`VerifiedDeployment::check_extends`]) detects a rolled-back or forked history.

//!
//! A workload's initializer attests the Coordinator the same way, with the
//! [`CoordinatorIdentity`](contrast_core::coordinator_identity::CoordinatorIdentity) its pod
//! was generated with instead of a manifest ([`identity_validator`]).
//!
//! Used by the `initializer` (mesh certificate) and the `contrast` CLI (set, verify, recover) as
//! well as by third-party applications. This crate does the I/O (TCP, TLS, gRPC); every check it
//! runs is the pure code of `contrast-attest` and `contrast-core`.

#![forbid(unsafe_code)]

mod address;
mod attestation;
mod connection;
mod deployment;
mod error;

pub use address::{AddressError, coordinator_address};
pub use attestation::{
    MAX_ATTEST_RESPONSE, VerifiedAttestation, fetch_attestation, validate_attestation,
};
pub use connection::{Attested, CoordinatorClient, MAX_RESPONSE_BODY, Session};
/// The transport and the generated gRPC code, for callers that need more than [`Session`].
pub use contrast_grpc;
pub use deployment::{
    DeploymentError, VerifiedDeployment, coordinator_validator, identity_validator,
    identity_validator_with_crl, verify_deployment,
};
pub use error::ClientError;
