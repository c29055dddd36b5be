//! The Kubernetes ConfigMap store (feature `kubernetes`): one ConfigMap per key, as upstream's
//! ConfigMap history store keeps them (`contrast-formats.md` §5.5, `contrast-protocols.md` §4.7).
//!
//! Layout of the ConfigMap of key `<kind>/<name>`:
//!
//! - name `contrast-store-<kind>-<name>` ([`Key::configmap_name`]), in the Coordinator's
//!   namespace (from its service account);
//! - the value in `binaryData[<name>]` (`binaryData.latest`, `binaryData.<64 hex>`). A value
//!   under `data[<name>]` is read too (`kubectl create configmap --from-file` puts UTF-8 files
//!   there); every write moves it to `binaryData`;
//! - label `app.kubernetes.io/managed-by=contrast.edgeless.systems`, which `list` and `watch`
//!   select on;
//! - an owner reference to the Coordinator's StatefulSet (`apps/v1`, `StatefulSet`,
//!   `coordinator`), so deleting the deployment deletes the state. Its UID is found through the
//!   Coordinator's own pod ([`ConfigMapStore::discover`]).
//!
//! Compare-and-swap is optimistic concurrency on `resourceVersion`: GET, compare the bytes, then
//! REPLACE the object as read, which the API server refuses with 409 Conflict if anyone wrote in
//! between; an absent key is CREATEd, which fails with 409 AlreadyExists if another writer was
//! first. Both refusals are [`StoreError::Conflict`]: a lost race is never an overwrite.
//!
//! Watch lists the one ConfigMap (field selector `metadata.name=<cm>` and the label selector),
//! then watches from the list's `resourceVersion`, and resumes from the last seen version after a
//! disconnect or server-side timeout; when the server has compacted that version away (410 Gone)
//! it lists again. Values equal to the last one delivered are not delivered again.
//!
//! Every API call has a timeout ([`ConfigMapStoreOptions::timeout`], 10 s by default as
//! upstream), and every failure names the operation and the object ([`KubernetesError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{StoreError, check_content, check_mutable, check_put};
use crate::key::{CONFIGMAP_PREFIX, Key, check_kind};
use crate::store::{Store, Watch};

pub use contrast_core::kubernetes::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
/// The name of the Coordinator StatefulSet that owns the ConfigMaps.
pub const DEFAULT_STATEFULSET: &str = contrast_core::kubernetes::COORDINATOR_NAME;
/// Where a pod finds its namespace.
pub const SERVICE_ACCOUNT_NAMESPACE_PATH: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// The default timeout of one API call (upstream's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times `put` tries again when the ConfigMap changes under it.
const PUT_ATTEMPTS: usize = 3;

fn label_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// Tuning of a [`ConfigMapStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapStoreOptions {
    /// Timeout of every API call (for a watch: of starting it), [`DEFAULT_TIMEOUT`] by default.
    pub timeout: Duration,
    /// How long one watch request lasts before the server ends it and the store starts the next
    /// (`timeoutSeconds`, whole seconds, at least 1); 290 s by default. The store also gives up
    /// on a watch connection that stays silent for this long plus [`timeout`](Self::timeout).
    pub watch_timeout: Duration,
    /// How long a watch waits before trying again after a failure; 1 s by default.
    pub watch_retry_delay: Duration,
    /// How many ConfigMaps `list` asks for per page; 500 by default.
    pub list_page_size: u32,
}

impl Default for ConfigMapStoreOptions {
    fn default() -> ConfigMapStoreOptions {
        ConfigMapStoreOptions {
            timeout: DEFAULT_TIMEOUT,
            watch_timeout: Duration::from_secs(290),
            watch_retry_delay: Duration::from_secs(1),
            list_page_size: 500,
        }
    }
}

/// The StatefulSet that owns the store's ConfigMaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSetOwner {
    /// Its name, normally [`DEFAULT_STATEFULSET`].
    pub name: String,
    /// Its UID.
    pub uid: String,
}

impl StatefulSetOwner {
    /// The owner reference put on every ConfigMap: `apps/v1` `StatefulSet` `<name>` `<uid>`.
    #[must_use]
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".to_owned(),
            kind: "StatefulSet".to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            ..OwnerReference::default()
        }
    }
}

/// A Kubernetes API call of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// GET of a ConfigMap.
    Get,
    /// POST of a new ConfigMap.
    Create,
    /// PUT of a ConfigMap at the `resourceVersion` read.
    Replace,
    /// LIST of ConfigMaps.
    List,
    /// WATCH of a ConfigMap.
    Watch,
    /// GET of the Coordinator's own pod (finding the owner).
    GetPod,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Get => "get",
            Operation::Create => "create",
            Operation::Replace => "replace",
            Operation::List => "list",
            Operation::Watch => "watch",
            Operation::GetPod => "get",
        })
    }
}

/// Why a Kubernetes API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubernetesFailure {
    /// The API server refused (a `metav1.Status`), e.g. 403 Forbidden.
    #[error("the API server answered {code} {reason}: {message}")]
    Api {
        /// The HTTP status code.
        code: u16,
        /// The machine-readable reason, e.g. `Forbidden`, `AlreadyExists`, `Conflict`.
        reason: String,
        /// The server's message.
        message: String,
    },
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request did not reach the server or the answer could not be read.
    #[error("{0}")]
    Client(Box<kube::Error>),
    /// The server returned an object without `metadata.resourceVersion`, so it cannot be
    /// replaced safely.
    #[error("the object has no resourceVersion")]
    MissingResourceVersion,
    /// The pod has no owner reference to the StatefulSet.
    #[error("it has no owner reference to apps/v1 StatefulSet {statefulset:?}")]
    NoOwner {
        /// The StatefulSet looked for.
        statefulset: String,
    },
}

impl KubernetesFailure {
    fn api_code(&self) -> Option<u16> {
        match self {
            KubernetesFailure::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the server answered 404 Not Found.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.api_code() == Some(404)
    }

    /// Whether the server answered 409 (AlreadyExists or Conflict).
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        self.api_code() == Some(409)
    }

    /// Whether the server answered 410 Gone (a watch's `resourceVersion` is too old).
    #[must_use]
    pub fn is_gone(&self) -> bool {
        self.api_code() == Some(410)
    }
}

impl From<kube::Error> for KubernetesFailure {
    fn from(error: kube::Error) -> KubernetesFailure {
        match error {
            kube::Error::Api(status) => KubernetesFailure::from(*status),
            other => KubernetesFailure::Client(Box::new(other)),
        }
    }
}

impl From<kube::core::Status> for KubernetesFailure {
    fn from(status: kube::core::Status) -> KubernetesFailure {
        KubernetesFailure::Api {
            code: status.code,
            reason: status.reason,
            message: status.message,
        }
    }
}

/// A failed Kubernetes API call: which operation on which object, and why.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {object} failed: {reason}")]
pub struct KubernetesError {
    /// The call.
    pub operation: Operation,
    /// The object, e.g. `configmap contrast/contrast-store-transitions-latest`.
    pub object: String,
    /// Why it failed.
    pub reason: KubernetesFailure,
}

/// A [`Store`] on Kubernetes ConfigMaps in one namespace. Clones share the client.
#[derive(Clone)]
pub struct ConfigMapStore {
    configmaps: Api<ConfigMap>,
    namespace: String,
    owner: Option<StatefulSetOwner>,
    options: ConfigMapStoreOptions,
}

impl fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("namespace", &self.namespace)
            .field("owner", &self.owner)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ConfigMapStore {
    /// A store in `namespace` whose new ConfigMaps are owned by `owner` (none: tests, or a
    /// store outside a Coordinator pod).
    #[must_use]
    pub fn new(
        client: kube::Client,
        namespace: &str,
        owner: Option<StatefulSetOwner>,
        options: ConfigMapStoreOptions,
    ) -> ConfigMapStore {
        ConfigMapStore {
            configmaps: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            owner,
            options,
        }
    }

    /// A store in `namespace` owned by the StatefulSet `statefulset` that owns the pod
    /// `pod_name` (the Coordinator passes `$HOSTNAME` and [`DEFAULT_STATEFULSET`]).
    pub async fn discover(
        client: kube::Client,
        namespace: &str,
        pod_name: &str,
        statefulset: &str,
        options: ConfigMapStoreOptions,
    ) -> Result<ConfigMapStore, KubernetesError> {
        let owner = discover_owner(
            client.clone(),
            namespace,
            pod_name,
            statefulset,
            options.timeout,
        )
        .await?;
        Ok(ConfigMapStore::new(client, namespace, Some(owner), options))
    }

    /// The namespace of the ConfigMaps.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The owner of new ConfigMaps.
    #[must_use]
    pub fn owner(&self) -> Option<&StatefulSetOwner> {
        self.owner.as_ref()
    }

    fn error(
        &self,
        operation: Operation,
        name: &str,
        reason: KubernetesFailure,
    ) -> KubernetesError {
        let object = if name.is_empty() {
            format!("configmaps in namespace {}", self.namespace)
        } else {
            format!("configmap {}/{name}", self.namespace)
        };
        KubernetesError {
            operation,
            object,
            reason,
        }
    }

    /// Runs one API call on ConfigMap `name` ("" for the collection) under the timeout.
    async fn call<T>(
        &self,
        operation: Operation,
        name: &str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubernetesError> {
        match tokio::time::timeout(self.options.timeout, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(self.error(operation, name, error.into())),
            Err(_) => Err(self.error(
                operation,
                name,
                KubernetesFailure::Timeout(self.options.timeout),
            )),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<ConfigMap>, KubernetesError> {
        self.call(Operation::Get, name, self.configmaps.get_opt(name))
            .await
    }

    async fn create(&self, name: &str, configmap: &ConfigMap) -> Result<(), KubernetesError> {
        self.call(
            Operation::Create,
            name,
            self.configmaps.create(&PostParams::default(), configmap),
        )
        .await
        .map(drop)
    }

    /// Replaces `configmap` as read: the API server checks its `resourceVersion`.
    async fn replace(&self, name: &str, configmap: &ConfigMap) -> Result<(), KubernetesError> {
        if configmap
            .metadata
            .resource_version
            .as_deref()
            .is_none_or(str::is_empty)
        {
            // Without it the server would replace unconditionally: an overwrite, not a CAS.
            return Err(self.error(
                Operation::Replace,
                name,
                KubernetesFailure::MissingResourceVersion,
            ));
        }
        self.call(
            Operation::Replace,
            name,
            self.configmaps
                .replace(name, &PostParams::default(), configmap),
        )
        .await
        .map(drop)
    }

    fn new_configmap(&self, key: &Key, value: &[u8]) -> ConfigMap {
        let mut configmap = ConfigMap {
            metadata: ObjectMeta {
                name: Some(key.configmap_name()),
                namespace: Some(self.namespace.clone()),
                owner_references: self
                    .owner
                    .as_ref()
                    .map(|owner| vec![owner.owner_reference()]),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        set_value(&mut configmap, key, value);
        configmap
    }

    /// The one ConfigMap of `name` (if it exists and carries the label) and the list's
    /// `resourceVersion`, where a watch starts.
    async fn list_one(&self, name: &str) -> Result<(String, Option<ConfigMap>), KubernetesError> {
        let params = ListParams::default()
            .labels(&label_selector())
            .fields(&format!("metadata.name={name}"));
        let list = self
            .call(Operation::List, name, self.configmaps.list(&params))
            .await?;
        let version = list.metadata.resource_version.unwrap_or_default();
        let configmap = list
            .items
            .into_iter()
            .find(|configmap| configmap.metadata.name.as_deref() == Some(name));
        Ok((version, configmap))
    }
}

/// Finds the StatefulSet `statefulset` among the owners of pod `pod_name`.
pub async fn discover_owner(
    client: kube::Client,
    namespace: &str,
    pod_name: &str,
    statefulset: &str,
    timeout: Duration,
) -> Result<StatefulSetOwner, KubernetesError> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let error = |reason| KubernetesError {
        operation: Operation::GetPod,
        object: format!("pod {namespace}/{pod_name}"),
        reason,
    };
    let pod = match tokio::time::timeout(timeout, pods.get(pod_name)).await {
        Ok(Ok(pod)) => pod,
        Ok(Err(failure)) => return Err(error(failure.into())),
        Err(_) => return Err(error(KubernetesFailure::Timeout(timeout))),
    };
    pod.metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|owner| {
            owner.api_version == "apps/v1"
                && owner.kind == "StatefulSet"
                && owner.name == statefulset
        })
        .map(|owner| StatefulSetOwner {
            name: owner.name,
            uid: owner.uid,
        })
        .ok_or_else(|| {
            error(KubernetesFailure::NoOwner {
                statefulset: statefulset.to_owned(),
            })
        })
}

/// The value stored for key name `name`: `binaryData[name]`, else `data[name]`.
fn stored_value(configmap: &ConfigMap, name: &str) -> Option<Vec<u8>> {
    if let Some(value) = configmap
        .binary_data
        .as_ref()
        .and_then(|data| data.get(name))
    {
        return Some(value.0.clone());
    }
    configmap
        .data
        .as_ref()
        .and_then(|data| data.get(name))
        .map(|value| value.as_bytes().to_vec())
}

fn in_binary_data(configmap: &ConfigMap, name: &str) -> bool {
    configmap
        .binary_data
        .as_ref()
        .is_some_and(|data| data.contains_key(name))
}

/// Sets the value in `binaryData` (dropping a `data` entry of the same name, which the server
/// would reject as a duplicate) and the label.
fn set_value(configmap: &mut ConfigMap, key: &Key, value: &[u8]) {
    configmap
        .binary_data
        .get_or_insert_with(BTreeMap::new)
        .insert(key.name().to_owned(), ByteString(value.to_vec()));
    if let Some(data) = &mut configmap.data {
        data.remove(key.name());
        if data.is_empty() {
            configmap.data = None;
        }
    }
    configmap
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned());
}

impl Store for ConfigMapStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(configmap) = self.read(&key.configmap_name()).await? else {
            return Ok(None);
        };
        // A ConfigMap without the entry holds the empty value (corrupt for a blob).
        let value = stored_value(&configmap, key.name()).unwrap_or_default();
        check_content(key, &value)?;
        Ok(Some(value))
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        check_put(key, value)?;
        let name = key.configmap_name();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last_attempt = attempt >= PUT_ATTEMPTS;
            match self.create(&name, &self.new_configmap(key, value)).await {
                Ok(()) => return Ok(()),
                Err(error) if error.reason.is_conflict() && !last_attempt => {}
                Err(error) => return Err(error.into()),
            }
            let Some(mut existing) = self.read(&name).await? else {
                continue; // Deleted in between: create it again.
            };
            if stored_value(&existing, key.name()).as_deref() == Some(value) {
                return Ok(());
            }
            // The stored blob does not hash to its name (we checked that `value` does):
            // replace it with the right content, as the other backends do.
            set_value(&mut existing, key, value);
            match self.replace(&name, &existing).await {
                Ok(()) => return Ok(()),
                Err(error)
                    if (error.reason.is_conflict() || error.reason.is_not_found())
                        && !last_attempt => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn compare_and_swap(&self, key: &Key, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        check_mutable(key)?;
        let name = key.configmap_name();
        let conflict = || StoreError::Conflict { key: key.clone() };
        let Some(mut configmap) = self.read(&name).await? else {
            if !old.is_empty() {
                return Err(conflict());
            }
            return match self.create(&name, &self.new_configmap(key, new)).await {
                Ok(()) => Ok(()),
                // AlreadyExists: another writer created it first.
                Err(error) if error.reason.is_conflict() => Err(conflict()),
                Err(error) => Err(error.into()),
            };
        };
        let current = stored_value(&configmap, key.name()).unwrap_or_default();
        if current != old {
            return Err(conflict());
        }
        if current == new && in_binary_data(&configmap, key.name()) {
            return Ok(());
        }
        set_value(&mut configmap, key, new);
        match self.replace(&name, &configmap).await {
            Ok(()) => Ok(()),
            // Conflict: written since our read; NotFound: deleted since our read.
            Err(error) if error.reason.is_conflict() || error.reason.is_not_found() => {
                Err(conflict())
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        check_kind(kind)?;
        let prefix = format!("{CONFIGMAP_PREFIX}{kind}-");
        let mut params = ListParams::default()
            .labels(&label_selector())
            .limit(self.options.list_page_size);
        let mut names = Vec::new();
        loop {
            let page = self
                .call(Operation::List, "", self.configmaps.list(&params))
                .await?;
            for configmap in &page.items {
                let Some(name) = configmap
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|name| name.strip_prefix(&prefix))
                else {
                    continue;
                };
                // `contrast-store-a-b-c` may be `a/b-c` or `a-b/c`: the entry name decides.
                let holds_key = configmap
                    .binary_data
                    .as_ref()
                    .is_some_and(|data| data.contains_key(name))
                    || configmap
                        .data
                        .as_ref()
                        .is_some_and(|data| data.contains_key(name));
                if holds_key && Key::from_parts(kind, name).is_ok() {
                    names.push(name.to_owned());
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    async fn watch(&self, key: &Key) -> Result<Watch, StoreError> {
        let name = key.configmap_name();
        let (resource_version, current) = self.list_one(&name).await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut watcher = Watcher {
            store: self.clone(),
            key: key.clone(),
            name,
            resource_version,
            last: None,
            sender,
        };
        if let Some(configmap) = current {
            watcher.deliver(&configmap);
        }
        let task = tokio::spawn(watcher.run());
        Ok(Watch::new(key.clone(), receiver, Some(task.abort_handle())))
    }
}

/// How one watch request ended.
enum WatchEnd {
    /// The server closed the stream (its timeout) or the connection broke: watch again from
    /// the last version.
    Closed,
    /// The last version is too old (410 Gone): list again.
    Gone,
    /// The watch could not be started, or the server sent an error event.
    Failed(KubernetesError),
    /// The [`Watch`] was dropped.
    Dropped,
}

/// The task behind one [`Watch`].
struct Watcher {
    store: ConfigMapStore,
    key: Key,
    name: String,
    resource_version: String,
    /// The last value delivered; `None` before the first and after a deletion.
    last: Option<Vec<u8>>,
    sender: mpsc::UnboundedSender<Result<Vec<u8>, StoreError>>,
}

impl Watcher {
    async fn run(mut self) {
        loop {
            let started = Instant::now();
            match self.watch_once().await {
                WatchEnd::Dropped => return,
                WatchEnd::Closed => {
                    // A stream that ends at once again and again would spin: pace it.
                    if started.elapsed() < self.store.options.watch_retry_delay {
                        tokio::time::sleep(self.store.options.watch_retry_delay).await;
                    }
                }
                WatchEnd::Gone => self.relist().await,
                WatchEnd::Failed(error) => {
                    if self.sender.send(Err(error.into())).is_err() {
                        return;
                    }
                    tokio::time::sleep(self.store.options.watch_retry_delay).await;
                    // The version may be why it failed; a fresh list is always safe.
                    self.relist().await;
                }
            }
            if self.sender.is_closed() {
                return;
            }
        }
    }

    /// Lists the ConfigMap again: delivers its value if it changed and restarts from the list's
    /// version. A failure is delivered and retried after the delay.
    async fn relist(&mut self) {
        loop {
            match self.store.list_one(&self.name).await {
                Ok((version, configmap)) => {
                    self.resource_version = version;
                    match configmap {
                        Some(configmap) => self.deliver(&configmap),
                        None => self.last = None,
                    }
                    return;
                }
                Err(error) => {
                    if self.sender.send(Err(error.into())).is_err() {
                        return;
                    }
                    tokio::time::sleep(self.store.options.watch_retry_delay).await;
                }
            }
        }
    }

    async fn watch_once(&mut self) -> WatchEnd {
        let options = &self.store.options;
        let seconds = u32::try_from(options.watch_timeout.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let params = WatchParams::default()
            .labels(&label_selector())
            .fields(&format!("metadata.name={}", self.name))
            .timeout(seconds);
        let stream = match self
            .store
            .call(
                Operation::Watch,
                &self.name,
                self.store.configmaps.watch(&params, &self.resource_version),
            )
            .await
        {
            Ok(stream) => stream,
            Err(error) if error.reason.is_gone() => return WatchEnd::Gone,
            Err(error) => return WatchEnd::Failed(error),
        };
        let mut stream = std::pin::pin!(stream);
        let idle_limit = options.watch_timeout + options.timeout;
        loop {
            let event = match tokio::time::timeout(idle_limit, stream.next()).await {
                Ok(Some(Ok(event))) => event,
                // End of stream, a broken connection, or silence: watch again.
                Ok(None | Some(Err(_))) | Err(_) => return WatchEnd::Closed,
            };
            match event {
                WatchEvent::Added(configmap) | WatchEvent::Modified(configmap) => {
                    self.advance(&configmap);
                    self.deliver(&configmap);
                }
                WatchEvent::Deleted(configmap) => {
                    self.advance(&configmap);
                    self.last = None;
                }
                WatchEvent::Bookmark(bookmark) => {
                    self.resource_version = bookmark.metadata.resource_version;
                }
                WatchEvent::Error(status) => {
                    let reason = KubernetesFailure::from(*status);
                    if reason.is_gone() {
                        return WatchEnd::Gone;
                    }
                    return WatchEnd::Failed(self.store.error(
                        Operation::Watch,
                        &self.name,
                        reason,
                    ));
                }
            }
            if self.sender.is_closed() {
                return WatchEnd::Dropped;
            }
        }
    }

    fn advance(&mut self, configmap: &ConfigMap) {
        if let Some(version) = &configmap.metadata.resource_version {
            self.resource_version.clone_from(version);
        }
    }

    /// Sends the ConfigMap's value unless it is the last one sent.
    fn deliver(&mut self, configmap: &ConfigMap) {
        let value = stored_value(configmap, self.key.name()).unwrap_or_default();
        if self.last.as_ref() == Some(&value) {
            return;
        }
        let checked = check_content(&self.key, &value).map(|()| value.clone());
        self.last = Some(value);
        // A dropped receiver ends the task at its next check.
        let _ = self.sender.send(checked);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn configmap(binary: Option<&[u8]>, text: Option<&str>) -> ConfigMap {
        ConfigMap {
            binary_data: binary
                .map(|value| [("latest".to_owned(), ByteString(value.to_vec()))].into()),
            data: text.map(|value| [("latest".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn value_comes_from_binary_data_then_data() {
        assert_eq!(stored_value(&configmap(None, None), "latest"), None);
        assert_eq!(
            stored_value(&configmap(None, Some("text")), "latest").unwrap(),
            b"text"
        );
        assert_eq!(
            stored_value(&configmap(Some(b"\xff"), Some("text")), "latest").unwrap(),
            b"\xff"
        );
        assert_eq!(stored_value(&configmap(Some(b"x"), None), "other"), None);
    }

    #[test]
    fn writes_move_the_value_to_binary_data_and_label_it() {
        let mut written = configmap(None, Some("text"));
        set_value(&mut written, &Key::latest_transition(), b"\x00\x01");
        assert!(in_binary_data(&written, "latest"));
        assert_eq!(written.data, None);
        assert_eq!(stored_value(&written, "latest").unwrap(), b"\x00\x01");
        assert_eq!(
            written.metadata.labels.unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY_VALUE
        );
    }

    #[test]
    fn owner_reference_names_the_statefulset() {
        let owner = StatefulSetOwner {
            name: DEFAULT_STATEFULSET.to_owned(),
            uid: "u-1".to_owned(),
        };
        let reference = owner.owner_reference();
        assert_eq!(
            (
                reference.api_version.as_str(),
                reference.kind.as_str(),
                reference.name.as_str(),
                reference.uid.as_str()
            ),
            ("apps/v1", "StatefulSet", "coordinator", "u-1")
        );
        assert_eq!(reference.controller, None);
    }

    #[test]
    fn failures_classify_status_codes_and_read_well() {
        let conflict = KubernetesFailure::from(
            kube::core::Status::failure("the object has been modified", "Conflict").with_code(409),
        );
        assert!(conflict.is_conflict() && !conflict.is_not_found() && !conflict.is_gone());
        let gone = KubernetesFailure::from(kube::Error::Api(
            kube::core::Status::failure("too old resource version", "Expired")
                .with_code(410)
                .boxed(),
        ));
        assert!(gone.is_gone());
        assert!(!KubernetesFailure::Timeout(DEFAULT_TIMEOUT).is_conflict());
        let error = KubernetesError {
            operation: Operation::Replace,
            object: "configmap ns/contrast-store-transitions-latest".to_owned(),
            reason: conflict,
        };
        assert_eq!(
            error.to_string(),
            "replace configmap ns/contrast-store-transitions-latest failed: the API server answered 409 Conflict: the object has been modified"
        );
        assert_eq!(
            StoreError::from(error).to_string(),
            "replace configmap ns/contrast-store-transitions-latest failed: the API server answered 409 Conflict: the object has been modified"
        );
    }
}
