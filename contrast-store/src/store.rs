//! The [`Store`] trait, the [`Watch`] handle and [`AnyStore`], the backend chosen at run time.

use std::future::Future;

use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::file::FileStore;
use crate::key::Key;
use crate::memory::MemoryStore;

/// A key-value store with content-addressed blobs, compare-and-swap for mutable keys, and watch.
///
/// Methods are `async` (native `impl Future + Send` in the trait, no boxing). Such a trait is not
/// dyn-compatible, so code that must pick a backend at run time holds an [`AnyStore`], which
/// dispatches with a `match`; everything else is generic over `S: Store`. This keeps every call
/// statically dispatched and needs no `async-trait` crate.
///
/// Semantics every backend keeps (checked by the conformance suite in `tests/conformance.rs`):
/// - [`get`](Store::get) re-hashes values of content-addressed keys and reports
///   [`StoreError::Corrupt`] if they do not match their name.
/// - [`put`](Store::put) only takes content-addressed keys and values that hash to the name.
///   Writing a blob that is already stored intact is a no-op.
/// - [`compare_and_swap`](Store::compare_and_swap) only takes mutable keys. An absent key equals
///   the empty value. A mismatch is [`StoreError::Conflict`]. It is atomic with respect to every
///   other writer of the same store (for the file store: across processes on one machine).
/// - [`watch`](Store::watch) first yields the value the key has when the watch starts (if it
///   exists), then every later change.
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, or `None` if it is not stored.
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Stores a content-addressed value: `key` must be `<kind>/<hex SHA-256 of value>`.
    fn put(&self, key: &Key, value: &[u8]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces the value of a mutable `key` with `new` if it currently equals `old` (an absent
    /// key equals the empty value); otherwise fails with [`StoreError::Conflict`].
    fn compare_and_swap(
        &self,
        key: &Key,
        old: &[u8],
        new: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The names stored under `kind`, sorted.
    fn list(&self, kind: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Watches `key`: the current value (if any), then every change.
    fn watch(&self, key: &Key) -> impl Future<Output = Result<Watch, StoreError>> + Send;

    /// Reads several keys, with one result per key in order. Backends may batch the reads (the
    /// file store does them in one blocking task); the default reads them one by one.
    fn get_many(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Vec<Result<Option<Vec<u8>>, StoreError>>> + Send {
        async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await);
            }
            values
        }
    }
}

/// The changes of one key, in order. Dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    key: Key,
    receiver: mpsc::UnboundedReceiver<Result<Vec<u8>, StoreError>>,
    task: Option<tokio::task::AbortHandle>,
}

impl Watch {
    pub(crate) fn new(
        key: Key,
        receiver: mpsc::UnboundedReceiver<Result<Vec<u8>, StoreError>>,
        task: Option<tokio::task::AbortHandle>,
    ) -> Watch {
        Watch {
            key,
            receiver,
            task,
        }
    }

    /// The watched key.
    #[must_use]
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The next value (or a read error; the watch goes on after one). `None` once the store
    /// has stopped.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, StoreError>> {
        self.receiver.recv().await
    }

    /// The next value if one is already waiting.
    pub fn try_next(&mut self) -> Option<Result<Vec<u8>, StoreError>> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A store whose backend is chosen at run time (configuration), dispatching with a `match`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// Files under a state directory (the embedded default).
    File(FileStore),
    /// In memory (tests).
    Memory(MemoryStore),
    /// One ConfigMap per key (feature `kubernetes`); boxed, it carries a whole API client.
    #[cfg(feature = "kubernetes")]
    Kubernetes(Box<crate::kubernetes::ConfigMapStore>),
}

impl From<FileStore> for AnyStore {
    fn from(store: FileStore) -> AnyStore {
        AnyStore::File(store)
    }
}

impl From<MemoryStore> for AnyStore {
    fn from(store: MemoryStore) -> AnyStore {
        AnyStore::Memory(store)
    }
}

#[cfg(feature = "kubernetes")]
impl From<crate::kubernetes::ConfigMapStore> for AnyStore {
    fn from(store: crate::kubernetes::ConfigMapStore) -> AnyStore {
        AnyStore::Kubernetes(Box::new(store))
    }
}

/// Runs the same expression on whichever backend `any` holds.
macro_rules! on_backend {
    ($any:expr, $store:ident => $call:expr) => {
        match $any {
            AnyStore::File($store) => $call,
            AnyStore::Memory($store) => $call,
            #[cfg(feature = "kubernetes")]
            AnyStore::Kubernetes($store) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(self, store => store.get(key).await)
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        on_backend!(self, store => store.put(key, value).await)
    }

    async fn compare_and_swap(&self, key: &Key, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        on_backend!(self, store => store.compare_and_swap(key, old, new).await)
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        on_backend!(self, store => store.list(kind).await)
    }

    async fn watch(&self, key: &Key) -> Result<Watch, StoreError> {
        on_backend!(self, store => store.watch(key).await)
    }

    async fn get_many(&self, keys: &[Key]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        on_backend!(self, store => store.get_many(keys).await)
    }
}
