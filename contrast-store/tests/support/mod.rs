//! The ConfigMap store on the testkit's fake Kubernetes API server, for the generic conformance
//! suite (`tests/conformance.rs`) and the backend's own tests (`tests/kubernetes.rs`).
#![allow(dead_code, unreachable_pub)] // Each test binary uses a part.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may unwrap and panic.

use std::sync::Arc;
use std::time::Duration;

use contrast_store::kubernetes::{ConfigMapStore, ConfigMapStoreOptions};
use contrast_store::{Key, Store, StoreError, Watch};
use contrast_testkit::apiserver::FakeApiServer;

/// A [`ConfigMapStore`] on its own [`FakeApiServer`], usable wherever a `Store + Clone` is
/// (the generic conformance suite): it delegates every call and keeps the server alive.
#[derive(Clone)]
pub struct FakeBackedStore {
    /// The store under test.
    pub store: ConfigMapStore,
    /// Its server.
    pub server: Arc<FakeApiServer>,
}

impl FakeBackedStore {
    /// A fake server and a store on it (through a kubeconfig-less `kube::Config` with the
    /// server's token), with short watch retry delays.
    pub async fn start() -> FakeBackedStore {
        let server = FakeApiServer::start("contrast", "conformance-token").await;
        let mut config = kube::Config::new(server.url().parse().unwrap());
        config.default_namespace = server.namespace().to_owned();
        config.headers.push((
            http::header::AUTHORIZATION,
            format!("Bearer {}", server.token()).parse().unwrap(),
        ));
        let client = kube::Client::try_from(config).unwrap();
        let options = ConfigMapStoreOptions {
            timeout: Duration::from_secs(5),
            watch_retry_delay: Duration::from_millis(50),
            ..ConfigMapStoreOptions::default()
        };
        FakeBackedStore {
            store: ConfigMapStore::new(client, server.namespace(), None, options),
            server: Arc::new(server),
        }
    }

    /// Writes `value` for `key` behind the store's back.
    pub fn tamper(&self, key: &Key, value: &[u8]) {
        self.server
            .overwrite(&key.configmap_name(), key.name(), value);
    }
}

impl Store for FakeBackedStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key).await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        self.store.put(key, value).await
    }

    async fn compare_and_swap(&self, key: &Key, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        self.store.compare_and_swap(key, old, new).await
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        self.store.list(kind).await
    }

    async fn watch(&self, key: &Key) -> Result<Watch, StoreError> {
        self.store.watch(key).await
    }
}
