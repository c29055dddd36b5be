//! Admission of manifest updates before their request is read: a set-manifest request is up to
//! [`MANIFEST_BODY_LIMIT`](contrast_core::api::MANIFEST_BODY_LIMIT) and is parsed before the
//! rules of [`Coordinator::set_manifest`] can decide it, so a transport asks
//! [`Coordinator::admit_update`] with what it knows at connection time (the caller's TLS key)
//! and reads the body only when admitted.
//!
//! - A caller that can never be authorised is refused with the same error
//!   [`Coordinator::set_manifest`] would answer: when a manifest is in force, the caller's key
//!   is not one of its workload owners', and no detached signature can authorise the update
//!   ([`signature_may_authorize`]: the manifest lists no `WorkloadOwnerPubKeys`).
//! - When a signature could authorise it (the manifest lists owner public keys, as `contrast
//!   generate` writes them), or no manifest is set yet (anyone may set the first), the request
//!   must be read to be decided: it is admitted, and its slot bounds the memory such callers
//!   can take.
//! - At most [`MANIFEST_UPDATES_IN_FLIGHT`](contrast_core::api::MANIFEST_UPDATES_IN_FLIGHT)
//!   updates are processed at once: one slot for callers whose TLS key is a workload owner's,
//!   one for everybody else, so that a flood without an owner's key cannot keep an owner out.
//!   A caller finding its slot taken is refused at once ([`Error::UpdateBusy`], retryable)
//!   instead of queueing: a queued request would hold its connection and its flow-control
//!   window of received bytes while it waits, and concurrent updates of one state conflict
//!   anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use contrast_core::manifest::Manifest;
use contrast_core::owner::{
    WorkloadOwnerPublicKey, authorize_update_by_key, signature_may_authorize,
};
use contrast_store::Store;

use crate::coordinator::Coordinator;
use crate::error::Error;

/// Manifest updates in progress per kind of caller (`MANIFEST_UPDATES_IN_FLIGHT` split between
/// the two kinds).
const SLOTS_PER_KIND: usize = contrast_core::api::MANIFEST_UPDATES_IN_FLIGHT / 2;
const _: () = assert!(
    SLOTS_PER_KIND >= 1 && SLOTS_PER_KIND * 2 == contrast_core::api::MANIFEST_UPDATES_IN_FLIGHT,
    "MANIFEST_UPDATES_IN_FLIGHT is split evenly between the two kinds of caller"
);

/// The slots of one kind of caller.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    taken: Arc<AtomicUsize>,
}

impl Slots {
    /// Takes a slot if one is free.
    fn try_take(&self) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < SLOTS_PER_KIND).then_some(taken + 1)
            })
            .ok()
            .map(|_| Slot {
                taken: Arc::clone(&self.taken),
            })
    }
}

/// A taken slot; freed when dropped.
#[derive(Debug)]
struct Slot {
    taken: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The update slots of a Coordinator.
#[derive(Debug, Default)]
pub(crate) struct UpdateSlots {
    owner: Slots,
    other: Slots,
}

/// Permission to read and process one set-manifest request: hold it until the request is
/// answered; the slot frees when it is dropped.
#[derive(Debug)]
#[must_use = "the slot frees when the admission is dropped"]
pub struct UpdateAdmission {
    by_owner_key: bool,
    _slot: Slot,
}

impl UpdateAdmission {
    /// Whether the caller's TLS key is a workload owner's of the manifest in force (else the
    /// request is the first set, or must carry a detached signature to be authorised).
    #[must_use]
    pub fn by_owner_key(&self) -> bool {
        self.by_owner_key
    }
}

impl<S: Store, P> Coordinator<S, P> {
    /// Decides, before a set-manifest request is read, whether the caller whose TLS key is
    /// `caller_spki` may send one now (see the module docs of `admission`): refuses what
    /// [`Coordinator::set_manifest`] would refuse whatever the request says, and bounds the
    /// updates in progress. Hold the admission until the request is answered.
    ///
    /// # Errors
    /// - [`Error::NeedsRecovery`], [`Error::Tampered`], [`Error::Internal`] as
    ///   [`Coordinator::manifest_settable`];
    /// - [`Error::NoOwnerCredential`], [`Error::NotAnOwnerKey`], [`Error::Unauthorized`] when no
    ///   signature can authorise an update and the key is not an owner's;
    /// - [`Error::UpdateBusy`] when the caller's kind has no free slot.
    pub async fn admit_update(&self, caller_spki: Option<&[u8]>) -> Result<UpdateAdmission, Error> {
        let by_owner_key = match self.manifest_settable().await? {
            None => false,
            Some(state) => {
                let current = state.manifest().manifest();
                match authorize_by_key(current, caller_spki) {
                    Ok(()) => true,
                    Err(_)
                        if signature_may_authorize(
                            current
                                .workload_owner_pub_keys
                                .as_deref()
                                .unwrap_or_default(),
                        ) =>
                    {
                        false
                    }
                    Err(refusal) => return Err(refusal),
                }
            }
        };
        let slots = if by_owner_key {
            &self.updates.owner
        } else {
            &self.updates.other
        };
        let slot = slots.try_take().ok_or(Error::UpdateBusy { by_owner_key })?;
        Ok(UpdateAdmission {
            by_owner_key,
            _slot: slot,
        })
    }
}

/// Authorises an update of `current` by the caller's TLS key alone: it must be a workload
/// owner's (by public key or key digest).
pub(crate) fn authorize_by_key(
    current: &Manifest,
    caller_spki: Option<&[u8]>,
) -> Result<(), Error> {
    let spki = caller_spki.ok_or(Error::NoOwnerCredential)?;
    let key = WorkloadOwnerPublicKey::from_pkix_der(spki).map_err(Error::NotAnOwnerKey)?;
    authorize_update_by_key(
        current.workload_owner_pub_keys.as_deref(),
        current.workload_owner_key_digests.as_deref(),
        &key,
    )
    .map_err(Error::Unauthorized)
}
