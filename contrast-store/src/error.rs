//! Errors of the key-value stores.

use std::path::PathBuf;

use contrast_core::hexstring;
use contrast_core::history::Hash;

use crate::key::{Key, KeyError};

/// Why a store operation failed. Each variant names the key (or path) it concerns.
///
/// Three classes are kept apart because callers react differently: [`Conflict`](Self::Conflict)
/// (someone else wrote first: re-read and retry or report), [`Corrupt`](Self::Corrupt) (stored
/// data is not what its address promises: never trust it) and [`Io`](Self::Io) (the medium
/// failed: retry later).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key or kind is not valid.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// Compare-and-swap found a different value than the expected old one.
    #[error("object {key} has changed since last read")]
    Conflict {
        /// The key whose value changed.
        key: Key,
    },
    /// A content-addressed value read back does not hash to its name.
    #[error("stored value of {key} is corrupt: hash mismatch: expected {}, got {}", .key.name(), hexstring::encode(.found))]
    Corrupt {
        /// The content-addressed key.
        key: Key,
        /// SHA-256 of what is stored.
        found: Hash,
    },
    /// `put` was given a key that is not content-addressed (its name is not 64 lowercase hex).
    #[error(
        "cannot put {key}: only content-addressed keys (<kind>/<64 lowercase hex>) are written with put"
    )]
    NotContentAddressed {
        /// The key.
        key: Key,
    },
    /// `put` was given a value whose SHA-256 is not the key's name.
    #[error("cannot put {key}: the value hashes to {}", hexstring::encode(.found))]
    ContentMismatch {
        /// The key.
        key: Key,
        /// SHA-256 of the given value.
        found: Hash,
    },
    /// `compare_and_swap` was given a content-addressed key, which never changes.
    #[error("cannot compare-and-swap {key}: content-addressed keys are immutable, use put")]
    Immutable {
        /// The key.
        key: Key,
    },
    /// A file-system operation failed.
    #[error("{operation} {} failed: {source}", .path.display())]
    Io {
        /// What was being done, e.g. `rename`.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call of the ConfigMap store failed (feature `kubernetes`).
    #[cfg(feature = "kubernetes")]
    #[error(transparent)]
    Kubernetes(#[from] crate::kubernetes::KubernetesError),
    /// A blocking task of the store panicked or was cancelled.
    #[error("store task for {what} did not complete: {message}")]
    TaskFailed {
        /// What the task did.
        what: String,
        /// The runtime's message.
        message: String,
    },
}

impl StoreError {
    /// Whether this is a lost compare-and-swap.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether this reports stored data that does not match its content address.
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// Checks a value read from a content-addressed key; mutable keys pass unchecked.
pub(crate) fn check_content(key: &Key, value: &[u8]) -> Result<(), StoreError> {
    match key.content_hash() {
        Some(expected) => {
            let found = contrast_core::sha256(value);
            if found == expected {
                Ok(())
            } else {
                Err(StoreError::Corrupt {
                    key: key.clone(),
                    found,
                })
            }
        }
        None => Ok(()),
    }
}

/// Checks a value given to `put`: the key must be content-addressed and name the value's hash.
pub(crate) fn check_put(key: &Key, value: &[u8]) -> Result<(), StoreError> {
    let Some(expected) = key.content_hash() else {
        return Err(StoreError::NotContentAddressed { key: key.clone() });
    };
    let found = contrast_core::sha256(value);
    if found != expected {
        return Err(StoreError::ContentMismatch {
            key: key.clone(),
            found,
        });
    }
    Ok(())
}

/// Checks the key given to `compare_and_swap`: it must be mutable.
pub(crate) fn check_mutable(key: &Key) -> Result<(), StoreError> {
    if key.content_hash().is_some() {
        return Err(StoreError::Immutable { key: key.clone() });
    }
    Ok(())
}
