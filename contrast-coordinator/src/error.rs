//! What the core refuses, and why: one typed error per rule, each with the upstream error code a
//! transport answers with ([`Error::code`]) and a short stable label for metrics
//! ([`Error::reason`]). The message is the explanation the caller gets.

use std::sync::Arc;

use contrast_attest::{AtlsError, ErrorKind};
use contrast_core::api::ErrorCode;
use contrast_core::manifest::{ManifestError, ValidationErrors};
use contrast_core::owner::{AuthorizationError, OwnerKeyError};
use contrast_core::seed::SeedError;
use contrast_core::seedshare::SeedShareError;
use contrast_store::HistoryStoreError;

/// A boxed error source for [`Error::Internal`].
type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why the Coordinator refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No manifest has been set yet.
    #[error("{}", contrast_core::api::NO_MANIFEST_MESSAGE)]
    NoManifest,
    /// A history exists but this Coordinator does not hold its seed (or it is stale).
    #[error("coordinator is in recovery mode")]
    NeedsRecovery,
    /// Recovery was asked of a Coordinator without any history.
    #[error("no state to recover from: set a manifest instead")]
    NothingToRecover,
    /// Recovery was asked of an active Coordinator.
    #[error("coordinator is already recovered")]
    AlreadyRecovered,
    /// The store holds a head no replica can have written; this Coordinator keeps its seed and
    /// refuses to serve until the store holds its head again.
    #[error("coordinator refuses to serve: {0}; restore transitions/latest from a backup")]
    Tampered(#[source] crate::state::Tampering),
    /// A mesh request on a connection accepted under a state that is no longer in force (a
    /// manifest was set or recovered since): decided under the current manifest only after the
    /// client reconnects and is appraised against it.
    #[error(
        "the manifest in force changed since this connection was attested (accepted under generation {accepted}, now {}); reconnect to be attested against it",
        .current.map_or_else(|| "none".to_owned(), |generation| generation.to_string())
    )]
    ConnectionOutdated {
        /// The generation the connection was accepted under.
        accepted: usize,
        /// The generation in force now, if any.
        current: Option<usize>,
    },
    /// The recovery's `history_contains` is not a 32-byte hash.
    #[error("history_contains is {found} bytes, expected 32")]
    HistoryContainsLength {
        /// Its length.
        found: usize,
    },
    /// The stored history does not contain the transition the recovering caller saw earlier:
    /// the store was rolled back. Nothing was recovered.
    #[error(
        "refusing to recover: the stored history (head {}) does not contain the transition {} you saw earlier, so the store was rolled back; restore it, or recover without that check to accept the older history",
        hex::encode(.head),
        hex::encode(.required)
    )]
    RolledBack {
        /// The transition the caller saw earlier.
        required: [u8; 32],
        /// The stored head.
        head: [u8; 32],
    },
    /// A recovery of a stale state brought another seed than the one it holds.
    #[error(
        "the seed does not belong to this coordinator's deployment: a stale coordinator recovers only with the seed it holds"
    )]
    DifferentSeed,
    /// User recovery without `force` while ready peers exist (they recover this Coordinator).
    #[error(
        "rejecting user recovery because {} recovered peers are available ({}); they will recover this Coordinator, or retry with force",
        .peers.len(),
        .peers.join(", ")
    )]
    ReadyPeers {
        /// The ready peers' mesh API addresses.
        peers: Vec<String>,
    },

    /// The manifest does not parse.
    #[error("manifest does not parse: {0}")]
    ManifestParse(#[source] ManifestError),
    /// The manifest parses but breaks a rule.
    #[error("manifest is invalid: {0}")]
    ManifestInvalid(#[source] ValidationErrors),
    /// The expected previous transition hash has the wrong length.
    #[error("previous_transition_hash is {found} bytes, expected 32")]
    PreviousTransitionLength {
        /// Its length.
        found: usize,
    },
    /// A policy the manifest references was not sent.
    #[error(transparent)]
    MissingPolicy(HistoryStoreError),
    /// The seed shares could not be encrypted to the manifest's seed-share owners.
    #[error("encrypting seed shares: {0}")]
    SeedShares(#[source] SeedShareError),
    /// The recovered seed or salt is malformed.
    #[error("seed or salt: {0}")]
    SeedOrSalt(#[source] SeedError),

    /// The caller is not authorised by the manifest in force (or a seed-share owners change).
    #[error(transparent)]
    Unauthorized(AuthorizationError),
    /// An update came with neither a client key nor a signature.
    #[error(
        "updating the manifest needs a workload owner's key as the TLS client key, or a signature"
    )]
    NoOwnerCredential,
    /// The client key of an update is not a usable workload-owner key.
    #[error("the client key is no workload-owner key: {0}")]
    NotAnOwnerKey(#[source] OwnerKeyError),
    /// A user recovery came without a client key.
    #[error("recovery needs the seed-share owner's key as the TLS client key")]
    NoRecoveryKey,
    /// The client key of a user recovery is not an RSA key.
    #[error("recovery needs the seed-share owner's RSA key as the TLS client key: {reason}")]
    RecoveryKeyNotRsa {
        /// Why the key is not RSA.
        reason: String,
    },
    /// The recovered seed does not verify the stored history's signed head.
    #[error(
        "the seed and salt do not match this Coordinator's history: the signed head does not verify with the key derived from them"
    )]
    SeedMismatch,

    /// Another update moved the head first.
    #[error("coordinator state was updated concurrently; fetch the history and retry")]
    Conflict,
    /// The caller's expected previous transition is not the head.
    #[error(transparent)]
    TransitionMismatch(HistoryStoreError),
    /// The head moved between the unverified read and the verified load of a recovery.
    #[error(
        "coordinator state was updated concurrently: the head moved from {} to {} during recovery",
        hex::encode(.read),
        hex::encode(.verified)
    )]
    HeadMoved {
        /// The head read before authorising.
        read: [u8; 32],
        /// The head the verified load found.
        verified: [u8; 32],
    },
    /// Another recovery or update replaced the state during a recovery.
    #[error("coordinator state was updated concurrently during recovery")]
    Replaced,
    /// As many manifest updates of this kind of caller as may be processed at once
    /// ([`MANIFEST_UPDATES_IN_FLIGHT`](contrast_core::api::MANIFEST_UPDATES_IN_FLIGHT)) are in
    /// progress; nothing of this request was read.
    #[error(
        "another manifest update {} is in progress; nothing of this request was read, retry later",
        if *.by_owner_key { "by a workload owner's key" } else { "without a workload owner's key" }
    )]
    UpdateBusy {
        /// Whether the caller's TLS key is a workload owner's (the two kinds have their own
        /// slots).
        by_owner_key: bool,
    },

    /// The mesh client's attestation was refused in the handshake (rejection deferred so that
    /// the client learns why).
    #[error("attestation refused: {0}")]
    AttestationRefused(Arc<AtlsError>),
    /// The mesh client sent no certificate.
    #[error("no client certificate")]
    NoClientCertificate,
    /// The mesh client's certificate was not appraised.
    #[error("the client certificate carries no attestation")]
    NoAttestation,
    /// The mesh client's `HOST_DATA` is no `Policies` key of the manifest in force.
    #[error("policy hash {} not found in manifest", hex::encode(.host_data))]
    UnknownHostData {
        /// The attested `HOST_DATA`.
        host_data: [u8; 32],
    },
    /// The mesh certificate could not be issued for the policy's SANs or the client's key.
    #[error("issuing the mesh certificate: {0}")]
    Certificate(#[source] contrast_ca::CaError),
    /// Peer recovery asked by a workload whose policy role is not `coordinator`.
    #[error("role {role:?} not allowed to recover")]
    RoleNotAllowed {
        /// The policy's role.
        role: String,
    },

    /// Something failed on this side (store, key derivation, CA).
    #[error("{what}: {source}")]
    Internal {
        /// What was being done.
        what: &'static str,
        /// What failed.
        source: Source,
    },
}

impl Error {
    /// An internal failure while doing `what`.
    pub(crate) fn internal(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal {
            what,
            source: Box::new(source),
        }
    }

    /// The upstream error code a transport answers with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoManifest | Self::NothingToRecover => ErrorCode::NoManifest,
            Self::NeedsRecovery => ErrorCode::NeedsRecovery,
            Self::ConnectionOutdated { .. } => ErrorCode::ManifestConflict,
            Self::Tampered(_) | Self::RolledBack { .. } => ErrorCode::HistoryTampered,
            Self::AlreadyRecovered | Self::ReadyPeers { .. } => ErrorCode::AlreadyRecovered,
            Self::ManifestParse(_)
            | Self::ManifestInvalid(_)
            | Self::PreviousTransitionLength { .. }
            | Self::HistoryContainsLength { .. }
            | Self::MissingPolicy(_)
            | Self::SeedShares(_)
            | Self::SeedOrSalt(_)
            | Self::Certificate(_) => ErrorCode::InvalidArgument,
            Self::Unauthorized(
                AuthorizationError::BadSignature { .. }
                | AuthorizationError::MalformedSignature { .. },
            ) => ErrorCode::InvalidSignature,
            Self::Unauthorized(_)
            | Self::NoOwnerCredential
            | Self::NotAnOwnerKey(_)
            | Self::NoRecoveryKey
            | Self::RecoveryKeyNotRsa { .. }
            | Self::SeedMismatch
            | Self::DifferentSeed
            | Self::AttestationRefused(_)
            | Self::NoClientCertificate
            | Self::NoAttestation
            | Self::UnknownHostData { .. }
            | Self::RoleNotAllowed { .. } => ErrorCode::PermissionDenied,
            Self::Conflict
            | Self::TransitionMismatch(_)
            | Self::HeadMoved { .. }
            | Self::Replaced => ErrorCode::ManifestConflict,
            Self::UpdateBusy { .. } => ErrorCode::Busy,
            Self::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// A short, stable label for metrics (`unknown_host_data`, `reference_values`, …).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::AttestationRefused(error) => attestation_refusal_reason(error),
            Self::NoClientCertificate => "no_certificate",
            Self::NoAttestation => "no_attestation",
            Self::UnknownHostData { .. } => "unknown_host_data",
            Self::Certificate(_) => "certificate",
            Self::RoleNotAllowed { .. } => "not_coordinator",
            Self::Internal { .. } => "internal",
            Self::UpdateBusy { .. } => "busy",
            Self::NoManifest | Self::NothingToRecover => "no_manifest",
            Self::NeedsRecovery => "needs_recovery",
            Self::ConnectionOutdated { .. } => "outdated",
            Self::Tampered(_) | Self::RolledBack { .. } => "tampered",
            Self::AlreadyRecovered | Self::ReadyPeers { .. } => "already_recovered",
            Self::Conflict
            | Self::TransitionMismatch(_)
            | Self::HeadMoved { .. }
            | Self::Replaced => "conflict",
            Self::Unauthorized(_)
            | Self::NoOwnerCredential
            | Self::NotAnOwnerKey(_)
            | Self::NoRecoveryKey
            | Self::RecoveryKeyNotRsa { .. }
            | Self::SeedMismatch
            | Self::DifferentSeed => "unauthorized",
            Self::ManifestParse(_)
            | Self::ManifestInvalid(_)
            | Self::PreviousTransitionLength { .. }
            | Self::HistoryContainsLength { .. }
            | Self::MissingPolicy(_)
            | Self::SeedShares(_)
            | Self::SeedOrSalt(_) => "invalid_argument",
        }
    }
}

/// The metrics label of a refused attestation: the kind of check that failed.
fn attestation_refusal_reason(error: &AtlsError) -> &'static str {
    match error.kind() {
        // A genuine report the manifest's reference values do not accept.
        ErrorKind::Policy => "reference_values",
        ErrorKind::Freshness => "report_data",
        ErrorKind::NoAttestation => "no_attestation",
        ErrorKind::Malformed => "malformed",
        ErrorKind::Signature => "signature",
        ErrorKind::Chain => "chain",
        ErrorKind::Binding => "binding",
        ErrorKind::Collateral => "collateral",
        ErrorKind::Revoked => "revoked",
        ErrorKind::ReferenceValues => "reference_values_unusable",
        ErrorKind::Local => "internal",
        _ => "atls",
    }
}

/// Why recovering from one peer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRecoveryError<E> {
    /// Asking the peer failed (its attestation, its refusal of ours, the connection): the
    /// transport's error.
    #[error(transparent)]
    Peer(E),
    /// The peer serves another manifest than the stored head's: it is at another head (ahead,
    /// behind or forked), so its state is not the one to continue from.
    #[error(
        "the peer serves another manifest (sha256 {}) than the stored head's (sha256 {}); not recovering from it",
        hex::encode(.peer),
        hex::encode(.stored)
    )]
    HeadDiffers {
        /// SHA-256 of the peer's manifest.
        peer: [u8; 32],
        /// SHA-256 of the stored head's manifest.
        stored: [u8; 32],
    },
    /// The peer's seed or salt is malformed.
    #[error("the peer's answer is unusable: seed or salt: {0}")]
    SeedOrSalt(#[source] SeedError),
    /// The peer's mesh CA key is not a PEM P-384 key.
    #[error("the peer's answer is unusable: the mesh CA key: {0}")]
    MeshKey(String),
    /// The stored head's manifest (read before the seed is known, so unverified) breaks a
    /// manifest rule: its reference values are not used to attest a peer.
    #[error("the stored head's manifest is invalid; not attesting peers against it: {0}")]
    InvalidStoredManifest(#[source] ValidationErrors),
    /// The recovery itself failed (the peer's seed does not verify the stored history, the head
    /// moved, the store failed).
    #[error(transparent)]
    Recovery(Error),
}
