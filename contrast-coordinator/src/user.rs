//! The user API's rules: set manifest, get manifests, recovery by a seed-share owner.

use std::sync::Arc;

use contrast_ca::MeshCaKey;
use contrast_core::api::{RecoverRequest, SetManifestRequest};
use contrast_core::history::{Hash, HistoryError};
use contrast_core::manifest::ManifestDocument;
use contrast_core::owner::{
    authorize_recovery, check_seedshare_owners_unchanged, next_transition_hash,
    verify_update_signature,
};
use contrast_core::seed::{Salt, Seed, SeedEngine};
use contrast_core::seedshare::{SeedShareDocument, encrypt_seed_shares};
use contrast_store::{HistoryStoreError, Store};

use crate::admission::authorize_by_key;
use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::recovery::PeerDirectory;
use crate::state::{Phase, Recovered, ResetError, State, UpdateError};

/// What a successful set produced.
#[derive(Debug)]
#[non_exhaustive]
pub struct ManifestSet {
    /// The new state (its CA, head and generation).
    pub state: Arc<State>,
    /// The seed shares (the seed RSA-encrypted to each seed-share owner, and the salt): only on
    /// the first set.
    pub seed_shares: Option<SeedShareDocument>,
}

impl<S: Store, P: PeerDirectory> Coordinator<S, P> {
    /// Sets a manifest (upstream's `SetManifest`).
    ///
    /// The first set (uninitialized) draws a new seed and salt and encrypts them to the
    /// manifest's seed-share owners. A later set must be authorised by a workload owner of the
    /// manifest in force — a detached `signature` over the next transition if the request has
    /// one, else `caller_spki` (the key of the caller's TLS certificate) — and may not change
    /// the seed-share owners; with `previous_transition_hash` it only succeeds on that head.
    /// Every set rotates the mesh CA.
    ///
    /// # Errors
    /// - [`Error::NeedsRecovery`] in recovery or stale;
    /// - [`Error::ManifestParse`], [`Error::ManifestInvalid`], [`Error::PreviousTransitionLength`],
    ///   [`Error::MissingPolicy`], [`Error::SeedShares`];
    /// - [`Error::Unauthorized`], [`Error::NoOwnerCredential`], [`Error::NotAnOwnerKey`];
    /// - [`Error::Conflict`] (another update won), [`Error::TransitionMismatch`];
    /// - [`Error::Internal`].
    ///
    /// Nothing is visible in the store after a refusal.
    pub async fn set_manifest(
        &self,
        request: SetManifestRequest,
        caller_spki: Option<&[u8]>,
    ) -> Result<ManifestSet, Error> {
        let old = self.manifest_settable().await?;
        let manifest = ManifestDocument::parse(request.manifest).map_err(Error::ManifestParse)?;
        manifest
            .manifest()
            .validate()
            .map_err(Error::ManifestInvalid)?;
        let expected_previous = request
            .previous_transition_hash
            .as_deref()
            .map(|hash| {
                <[u8; 32]>::try_from(hash)
                    .map_err(|_| Error::PreviousTransitionLength { found: hash.len() })
            })
            .transpose()?;

        let (seed_engine, seed_shares) = match &old {
            Some(old) => {
                authorize_update(
                    old,
                    &manifest,
                    caller_spki,
                    request.signature.as_deref(),
                    expected_previous.as_ref(),
                )?;
                check_seedshare_owners_unchanged(
                    old.manifest()
                        .manifest()
                        .seedshare_owner_pub_keys
                        .as_deref(),
                    manifest.manifest().seedshare_owner_pub_keys.as_deref(),
                )
                .map_err(Error::Unauthorized)?;
                (old.seed_engine_arc(), None)
            }
            None => {
                let mut rng = self.guard.rng();
                let seed = Seed::generate(&mut rng);
                let salt = Salt::generate(&mut rng);
                let shares = encrypt_seed_shares(
                    seed.as_bytes(),
                    salt.as_bytes(),
                    manifest
                        .manifest()
                        .seedshare_owner_pub_keys
                        .as_deref()
                        .unwrap_or_default(),
                )
                .map_err(Error::SeedShares)?;
                let engine = SeedEngine::from_parts(&seed, &salt)
                    .map_err(|e| Error::internal("deriving keys from the new seed", e))?;
                (Arc::new(engine), Some(shares))
            }
        };

        let state = self
            .guard
            .update(
                old.as_ref(),
                seed_engine,
                manifest,
                request.policies,
                expected_previous.as_ref(),
            )
            .await
            .map_err(update_error)?;
        tracing::info!(
            from = if old.is_some() { "active" } else { "uninitialized" },
            state = "active",
            generation = state.generation(),
            head = %hex::encode(state.latest().transition_hash),
            "manifest set"
        );
        Ok(ManifestSet { state, seed_shares })
    }

    /// The state whose history, CAs and signed head get manifests (upstream's `GetManifests`)
    /// and `/attest` serve: only an active one.
    ///
    /// # Errors
    /// [`Error::NoManifest`], [`Error::NeedsRecovery`] (also when stale), [`Error::Internal`].
    pub async fn manifests(&self) -> Result<Arc<State>, Error> {
        match self.phase().await? {
            Phase::Active(state) => Ok(state),
            Phase::Uninitialized => Err(Error::NoManifest),
            Phase::NeedsRecovery | Phase::Stale(_) => Err(Error::NeedsRecovery),
            Phase::Tampered(_, tampering) => Err(Error::Tampered(tampering)),
        }
    }

    /// Recovery by a seed-share owner (upstream's `Recover`): `caller_spki` is the key of the
    /// caller's TLS certificate and must be one of the stored manifest's seed-share owners (RSA);
    /// the seed and salt must verify the whole stored history. Refused while ready peers exist
    /// (they recover this Coordinator) unless `force`. The mesh CA key is new: workloads
    /// re-attest.
    ///
    /// # Errors
    /// - [`Error::NothingToRecover`], [`Error::AlreadyRecovered`], [`Error::ReadyPeers`];
    /// - [`Error::NoRecoveryKey`], [`Error::RecoveryKeyNotRsa`], [`Error::Unauthorized`];
    /// - [`Error::SeedOrSalt`], [`Error::SeedMismatch`];
    /// - [`Error::HeadMoved`], [`Error::Replaced`] (a concurrent recovery or update);
    /// - [`Error::Internal`].
    pub async fn recover(
        &self,
        request: RecoverRequest,
        caller_spki: Option<&[u8]>,
    ) -> Result<Arc<State>, Error> {
        let old = self.recoverable().await?;
        if !request.force {
            let peers = self.peers.ready_peers().await;
            if !peers.is_empty() {
                return Err(Error::ReadyPeers { peers });
            }
        }
        let required: Option<Hash> = request
            .history_contains
            .as_deref()
            .map(|hash| {
                Hash::try_from(hash).map_err(|_| Error::HistoryContainsLength { found: hash.len() })
            })
            .transpose()?;
        let caller_pkcs1 = caller_spki.ok_or(Error::NoRecoveryKey).and_then(|spki| {
            contrast_core::owner::rsa_pkcs1_from_spki(spki).map_err(|e| Error::RecoveryKeyNotRsa {
                reason: e.to_string(),
            })
        })?;

        let state = self
            .guard
            .reset(
                old.as_ref(),
                required.as_ref(),
                async |manifest: &ManifestDocument| {
                    authorize_recovery(
                        manifest
                            .manifest()
                            .seedshare_owner_pub_keys
                            .as_deref()
                            .unwrap_or_default(),
                        &caller_pkcs1,
                    )
                    .map_err(Error::Unauthorized)?;
                    let seed_engine =
                        SeedEngine::new(&request.seed, &request.salt).map_err(Error::SeedOrSalt)?;
                    Ok(Recovered {
                        seed_engine: Arc::new(seed_engine),
                        // User recovery cannot know the old mesh key: workloads must re-attest.
                        mesh_key: MeshCaKey::generate(&mut self.guard.rng()),
                    })
                },
            )
            .await
            .map_err(|error| match error.split() {
                Ok(failure) => reset_error(failure),
                Err(refusal) => refusal,
            })?;
        tracing::info!(
            from = "needs-recovery",
            state = "active",
            generation = state.generation(),
            head = %hex::encode(state.latest().transition_hash),
            "recovered by a seed-share owner"
        );
        Ok(state)
    }
}

impl<S: Store, P> Coordinator<S, P> {
    /// Whether a manifest may be set now (uninitialized or active), and on which state. A
    /// transport may ask before it reads a request body, to refuse early.
    ///
    /// # Errors
    /// [`Error::NeedsRecovery`] in recovery or stale, [`Error::Internal`].
    pub async fn manifest_settable(&self) -> Result<Option<Arc<State>>, Error> {
        match self.phase().await? {
            Phase::Uninitialized => Ok(None),
            Phase::Active(state) => Ok(Some(state)),
            Phase::NeedsRecovery | Phase::Stale(_) => Err(Error::NeedsRecovery),
            Phase::Tampered(_, tampering) => Err(Error::Tampered(tampering)),
        }
    }

    /// Whether a user recovery may be tried now (needs recovery or stale), and the state it
    /// replaces. A transport may ask before it reads a request body, to refuse early.
    ///
    /// # Errors
    /// [`Error::NothingToRecover`], [`Error::AlreadyRecovered`], [`Error::Internal`].
    pub async fn recoverable(&self) -> Result<Option<Arc<State>>, Error> {
        match self.phase().await? {
            Phase::Uninitialized => Err(Error::NothingToRecover),
            Phase::Active(_) => Err(Error::AlreadyRecovered),
            Phase::NeedsRecovery => Ok(None),
            Phase::Stale(state) => Ok(Some(state)),
            Phase::Tampered(_, tampering) => Err(Error::Tampered(tampering)),
        }
    }
}

/// Authorises an update against the manifest in force: a detached workload-owner signature
/// over the next transition if one is given, else the caller's TLS key.
fn authorize_update(
    old: &State,
    manifest: &ManifestDocument,
    caller_spki: Option<&[u8]>,
    signature: Option<&[u8]>,
    expected_previous: Option<&[u8; 32]>,
) -> Result<(), Error> {
    let current = old.manifest().manifest();
    if let Some(signature) = signature {
        // The signer commits to the head it saw; a different head is a conflict, not a bad
        // signature, and is reported as such by the history update.
        let head = old.latest().transition_hash;
        let previous = expected_previous.copied().unwrap_or(head);
        let next = next_transition_hash(&manifest.hash(), &previous);
        verify_update_signature(
            current
                .workload_owner_pub_keys
                .as_deref()
                .unwrap_or_default(),
            &next,
            signature,
        )
        .map_err(Error::Unauthorized)?;
        return Ok(());
    }
    authorize_by_key(current, caller_spki)
}

fn update_error(error: UpdateError) -> Error {
    match error {
        UpdateError::History(HistoryStoreError::Conflict) => Error::Conflict,
        UpdateError::History(error @ HistoryStoreError::TransitionMismatch { .. }) => {
            Error::TransitionMismatch(error)
        }
        UpdateError::History(error @ HistoryStoreError::MissingPolicy { .. }) => {
            Error::MissingPolicy(error)
        }
        other => Error::internal("storing the manifest", other),
    }
}

/// The recovery failures every kind of recovery shares, as [`Error`]s.
pub(crate) fn reset_error(error: ResetError<std::convert::Infallible>) -> Error {
    match error {
        ResetError::Verification(HistoryStoreError::Corruption(HistoryError::BadSignature)) => {
            Error::SeedMismatch
        }
        ResetError::NoHistory => Error::NothingToRecover,
        ResetError::HeadMoved { read, verified } => Error::HeadMoved { read, verified },
        ResetError::Replaced => Error::Replaced,
        ResetError::DifferentSeed => Error::DifferentSeed,
        ResetError::RolledBack { required, head } => Error::RolledBack { required, head },
        other => Error::internal("recovering the state", other),
    }
}
