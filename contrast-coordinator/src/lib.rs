//! The Contrast Coordinator's core: its state machine and every request rule, as a library.
//!
//! The Coordinator runs in a confidential VM. It accepts the manifest, keeps the signed manifest
//! history in a [`Store`](contrast_store::Store), derives its keys from a secret seed, acts as
//! the deployment's CA and is recovered after a restart by a seed-share owner or a ready peer.
//! This crate decides all of that; it knows no HTTP, gRPC or TLS. A transport (the `coordinator`
//! binary's listeners) hands requests in as typed values together with what the handshake
//! verified about the caller (its key, its attested claims), and maps the typed answers and
//! [`Error`]s (each with an upstream [`ErrorCode`](contrast_core::api::ErrorCode)) to its wire.
//!
//! Everything with an effect is passed in: the store, the [`Clock`], the [`Entropy`] and the
//! [`PeerDirectory`] that finds ready replicas; the TEE's [`Issuer`](contrast_attest::Issuer)
//! is an argument of [`Coordinator::attest`]. Tests pin the clock and seed the randomness.
//!
//! # States
//!
//! [`Phase`] is what every request sees first:
//!
//! ```text
//! Uninitialized ──set_manifest──► Active ──set_manifest──► Active'
//! NeedsRecovery ──recover / recover_from_peer──► Active
//! Active ──another replica moved the head (observe_head)──► Stale ──recover_from_peer──► Active
//! Active / Stale ──a head no replica can have written (observe_head)──► Tampered ──store repaired──► as before
//! ```
//!
//! The state of one generation ([`State`]) is immutable and swapped atomically by pointer
//! compare-and-swap; the store's `transitions/latest`, moved only by compare-and-swap, is the
//! single source of truth.
//!
//! # Requests
//!
//! | request | method | rule |
//! |---|---|---|
//! | may a set-manifest request be read | [`Coordinator::admit_update`] | before the body: refuse a key that cannot be authorised when no detached signature can be; at most [`MANIFEST_UPDATES_IN_FLIGHT`](contrast_core::api::MANIFEST_UPDATES_IN_FLIGHT) updates at once |
//! | set manifest | [`Coordinator::set_manifest`] | first set: new seed and salt, seed shares; later: a workload owner's key or detached signature, seed-share owners unchanged, optional expected previous transition; every set rotates the mesh CA |
//! | get manifests | [`Coordinator::manifests`] | active only |
//! | user recovery | [`Coordinator::recover`] | needs recovery or stale; the seed-share owner's RSA key; refused while ready peers exist unless forced; the seed must verify the stored history |
//! | mesh certificate | [`Coordinator::mesh_certificate`] | appraised client, `HOST_DATA` a `Policies` key; SANs, claims, workload secret |
//! | peer recovery (serving) | [`Coordinator::peer_recovery_answer`] | as a mesh certificate, and the policy's role is `coordinator` |
//! | peer recovery (asking) | [`Coordinator::recover_from_peer`] | the peer's answer must be the stored head's manifest and its seed must verify the history |
//! | evidence | [`Coordinator::attest`] | active only; report data binds nonce, head, root and mesh CA |
//! | transit encrypt / decrypt | [`Coordinator::transit`] | the state still in force; the client certificate's workload-secret ID is the key name; key from the seed ([`transit`]) |
#![forbid(unsafe_code)]

mod admission;
mod coordinator;
mod environment;
mod error;
mod evidence;
mod mesh;
mod recovery;
mod state;
pub mod transit;
mod user;

pub use admission::UpdateAdmission;
pub use coordinator::{Coordinator, Options};
pub use environment::{Clock, Entropy, OsEntropy, SystemClock};
pub use error::{Error, PeerRecoveryError};
pub use evidence::Evidence;
pub use mesh::{MeshCertificate, MeshClient};
pub use recovery::{PeerDirectory, PeerRecovery};
pub use state::{HeadObservation, HistoryView, Phase, State, Tampering};
pub use user::ManifestSet;
