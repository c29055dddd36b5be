//! The Coordinator client: attested TLS and HTTP/2 to the Coordinator's user API (port 1313)
//! and mesh API (port 7777), and the data owner's checks of what the Coordinator answers.
//!
//! Used by the `initializer` (mesh certificate), the `contrast` CLI (set, verify, recover) and
//! third-party Rust applications that verify a deployment themselves:
//!
//! ```no_run
//! # async fn demo(manifest: &contrast_core::manifest::Manifest) -> Result<(), Box<dyn std::error::Error>> {
//! use contrast_attest::AtlsClient;
//! use contrast_attest::client::{CoordinatorClient, coordinator_validator, verify_deployment};
//!
//! let validator = coordinator_validator(manifest)?;
//! let client = CoordinatorClient::new("coordinator.example:1313", AtlsClient::new(Some(validator)));
//! let response = client.get_manifests().await?;
//! let deployment = verify_deployment(&response.value)?;
//! println!("head {}", hex::encode(deployment.latest_transition_hash));
//! # Ok(()) }
//! ```
//!
//! # One connection, one attestation
//!
//! [`CoordinatorClient::connect`] opens a TCP connection (with `TCP_NODELAY`), runs the aTLS
//! handshake with a fresh per-connection config from the [`AtlsClient`](crate::AtlsClient), and speaks HTTP/2 over
//! it ([`Session`]). The server's certificate is appraised during the handshake; the result (the
//! [`VerifiedPeer`](crate::VerifiedPeer)) stays with the session, and every typed call made through it is answered by
//! exactly that appraised peer. The conveniences on [`CoordinatorClient`] open one connection per
//! call and return the value together with the peer ([`Attested`]).
//!
//! # Errors
//!
//! [`ClientError`] says at which stage a call failed: connecting, the handshake (our validator
//! refused the server: [`ClientError::Attestation`] with the failed check; anything else:
//! [`ClientError::Handshake`]), the server's refusal ([`ClientError::Api`], with the code and
//! message of its `ErrorResponse`), the HTTP exchange, or the response body.
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

mod connection;
mod deployment;
mod error;

pub use connection::{Attested, CoordinatorClient, MAX_RESPONSE_BODY, Session};
pub use deployment::{
    DeploymentError, VerifiedDeployment, coordinator_validator, verify_deployment,
};
pub use error::ClientError;
/// HTTP methods for [`Session::call`].
pub use hyper::Method;
