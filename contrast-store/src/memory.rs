//! The in-memory store, for tests: the same semantics as the file store, nothing durable.
//!
//! Values and watchers live under one mutex, so a write and its notification are one step and
//! every watcher sees every change in order. Each watcher has its own unbounded channel: a
//! change is never dropped for a slow reader (the reader pays in memory instead).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use crate::error::{StoreError, check_content, check_mutable, check_put};
use crate::key::{Key, check_kind};
use crate::store::{Store, Watch};

type WatchSender = mpsc::UnboundedSender<Result<Vec<u8>, StoreError>>;

/// An in-memory [`Store`]. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    values: HashMap<Key, Vec<u8>>,
    watchers: HashMap<Key, Vec<WatchSender>>,
}

impl MemoryState {
    fn set(&mut self, key: &Key, value: &[u8]) {
        if self.values.get(key).is_some_and(|current| current == value) {
            return;
        }
        self.values.insert(key.clone(), value.to_vec());
        if let Some(senders) = self.watchers.get_mut(key) {
            senders.retain(|sender| sender.send(Ok(value.to_vec())).is_ok());
        }
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Sets `key` to `value` without any check (not content addressing, not compare-and-swap),
    /// as an attacker with write access to the storage could. For tests of corruption detection.
    pub fn overwrite_unchecked(&self, key: &Key, value: &[u8]) {
        self.lock().set(key, value);
    }

    /// Removes `key` without any check. For tests of missing blobs.
    pub fn remove_unchecked(&self, key: &Key) {
        self.lock().values.remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock cannot leave a half-made change: every change is a
        // single insert.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.lock().values.get(key).cloned();
        if let Some(value) = &value {
            check_content(key, value)?;
        }
        Ok(value)
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        check_put(key, value)?;
        self.lock().set(key, value);
        Ok(())
    }

    async fn compare_and_swap(&self, key: &Key, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        check_mutable(key)?;
        let mut state = self.lock();
        let current = state.values.get(key).map_or(&[][..], Vec::as_slice);
        if current != old {
            return Err(StoreError::Conflict { key: key.clone() });
        }
        state.set(key, new);
        Ok(())
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        check_kind(kind)?;
        let mut names: Vec<String> = self
            .lock()
            .values
            .keys()
            .filter(|key| key.kind() == kind)
            .map(|key| key.name().to_owned())
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    async fn watch(&self, key: &Key) -> Result<Watch, StoreError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.lock();
        if let Some(value) = state.values.get(key) {
            // The receiver is alive, so this cannot fail.
            let _ = sender.send(Ok(value.clone()));
        }
        let senders = state.watchers.entry(key.clone()).or_default();
        senders.retain(|sender| !sender.is_closed());
        senders.push(sender);
        Ok(Watch::new(key.clone(), receiver, None))
    }
}
