//! The ConfigMap store (feature `kubernetes`) driven through the real `kube` client.
//!
//! Module `fake` runs everything against the in-process fake API server (contrast-testkit): the
//! conformance semantics of `tests/conformance.rs` (re-stated here, that suite's checks are
//! private to its file), the ConfigMap layout, `kubectl` interoperability, and what only a fake
//! can provoke (dropped watch connections, compaction, a wrong token, a server that never
//! answers). Module `real` runs the same backend suite against the cluster of the kubeconfig
//! named by `CONTRAST_TEST_KUBECONFIG`, each test in a fresh namespace it deletes afterwards,
//! and prints why it skips when the variable is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may unwrap and panic.
#![allow(clippy::needless_range_loop)] // Rounds index the per-task results.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use contrast_core::history::BlobKind;
use contrast_core::sha256;
use contrast_store::kubernetes::{
    ConfigMapStore, ConfigMapStoreOptions, DEFAULT_STATEFULSET, KubernetesError, KubernetesFailure,
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, Operation, StatefulSetOwner, discover_owner,
};
use contrast_store::{Key, Store, StoreError, Watch};
use contrast_testkit::apiserver::{FakeApiServer, SilentServer};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio::sync::Barrier;

const NAMESPACE: &str = "contrast-test";
const TOKEN: &str = "test-token-0123456789";
const REAL_KUBECONFIG: &str = "CONTRAST_TEST_KUBECONFIG";

fn options() -> ConfigMapStoreOptions {
    ConfigMapStoreOptions {
        timeout: Duration::from_secs(5),
        watch_retry_delay: Duration::from_millis(50),
        ..ConfigMapStoreOptions::default()
    }
}

/// A kubeconfig for `url` with a bearer token, as `kubectl` and `kube` read it.
fn kubeconfig_yaml(url: &str, namespace: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: {namespace}\n\
         current-context: fake\nusers:\n- name: test\n  user:\n    token: {token}\n"
    )
}

async fn client_from_kubeconfig(path: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// One store under test, the raw API to write behind its back, and what keeps them alive.
struct Fixture {
    store: ConfigMapStore,
    raw: Api<ConfigMap>,
    client: kube::Client,
    namespace: String,
    kubeconfig: PathBuf,
    server: Option<FakeApiServer>,
    /// A namespace of a real cluster to delete at the end.
    real_namespace: Option<Api<Namespace>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn fake() -> Fixture {
        let server = FakeApiServer::start(NAMESPACE, TOKEN).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(server.url(), NAMESPACE, TOKEN)).unwrap();
        let client = client_from_kubeconfig(&kubeconfig).await;
        Fixture {
            store: ConfigMapStore::new(client.clone(), NAMESPACE, None, options()),
            raw: Api::namespaced(client.clone(), NAMESPACE),
            client,
            namespace: NAMESPACE.to_owned(),
            kubeconfig,
            server: Some(server),
            real_namespace: None,
            _dir: dir,
        }
    }

    /// A fresh namespace on the real cluster, or `None` (with a message) without one.
    async fn real(test: &str) -> Option<Fixture> {
        let Some(path) = std::env::var_os(REAL_KUBECONFIG) else {
            println!(
                "skipping {test} against a real API server: set {REAL_KUBECONFIG} to a kubeconfig to run it"
            );
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let kubeconfig = PathBuf::from(path);
        let client = client_from_kubeconfig(&kubeconfig).await;
        let namespace = format!(
            "contrast-store-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some([("contrast-store-test".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        Some(Fixture {
            store: ConfigMapStore::new(client.clone(), &namespace, None, options()),
            raw: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            kubeconfig,
            server: None,
            real_namespace: Some(namespaces),
            _dir: tempfile::tempdir().unwrap(),
        })
    }

    fn server(&self) -> &FakeApiServer {
        self.server.as_ref().unwrap()
    }

    /// Replaces a key's value behind the store's back (a direct PUT, as anyone with write
    /// access to ConfigMaps could).
    async fn tamper(&self, key: &Key, value: &[u8]) {
        let name = key.configmap_name();
        let mut configmap = self.raw.get(&name).await.unwrap();
        configmap.binary_data = Some([(key.name().to_owned(), ByteString(value.to_vec()))].into());
        configmap.metadata.resource_version = None;
        self.raw
            .replace(&name, &PostParams::default(), &configmap)
            .await
            .unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(namespaces) = self.real_namespace.take() {
            let namespace = self.namespace.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let _ = namespaces
                        .delete(&namespace, &DeleteParams::default())
                        .await;
                });
            });
        }
    }
}

fn key(key: &str) -> Key {
    Key::parse(key).unwrap()
}

fn blob_key(kind: BlobKind, value: &[u8]) -> Key {
    Key::blob(kind, &sha256(value))
}

fn assert_conflict(result: Result<(), StoreError>, expected_key: &Key) {
    match result {
        Err(StoreError::Conflict { key }) => assert_eq!(&key, expected_key),
        other => panic!("expected a conflict on {expected_key}, got {other:?}"),
    }
}

fn kubernetes_error(result: Result<impl std::fmt::Debug, StoreError>) -> KubernetesError {
    match result {
        Err(StoreError::Kubernetes(error)) => error,
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }
}

async fn next_within(watch: &mut Watch) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch delivered nothing within 10 s")
        .expect("watch ended")
        .unwrap()
}

// ---------------------------------------------------------------- the backend suite

/// Vector CM-cas: an absent key equals the empty value.
async fn cas_absent_equals_empty(fixture: Fixture) {
    let store = &fixture.store;
    let k = key("foo/bar");
    assert_eq!(store.get(&k).await.unwrap(), None);
    store.compare_and_swap(&k, b"", b"v1").await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));

    let missing = key("foo/missing");
    assert_conflict(
        store.compare_and_swap(&missing, b"v1", b"v2").await,
        &missing,
    );
    assert_eq!(store.get(&missing).await.unwrap(), None);

    assert_conflict(store.compare_and_swap(&k, b"", b"v2").await, &k);
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));
}

/// A writer whose old value is stale loses; swapping a value for itself succeeds.
async fn cas_lost_race_and_same_value(fixture: Fixture) {
    let store = &fixture.store;
    let k = key("transitions/latest");
    store.compare_and_swap(&k, b"", b"v1").await.unwrap();
    store.compare_and_swap(&k, b"v1", b"v2").await.unwrap();
    assert_conflict(store.compare_and_swap(&k, b"v1", b"v3").await, &k);
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    let before = fixture.raw.get(&k.configmap_name()).await.unwrap();
    store.compare_and_swap(&k, b"v2", b"v2").await.unwrap();
    let after = fixture.raw.get(&k.configmap_name()).await.unwrap();
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "a same-value swap writes nothing"
    );
    let long = vec![7u8; 10_000];
    store.compare_and_swap(&k, b"v2", &long).await.unwrap();
    store.compare_and_swap(&k, &long, b"s").await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"s"[..]));
    // Swapping to the empty value keeps the ConfigMap, which then equals absent.
    store.compare_and_swap(&k, b"s", b"").await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b""[..]));
    store.compare_and_swap(&k, b"", b"again").await.unwrap();
}

/// Content-addressed keys never change, so compare-and-swap refuses them.
async fn cas_refuses_content_addressed(fixture: Fixture) {
    let store = &fixture.store;
    let k = blob_key(BlobKind::Manifest, b"m");
    match store.compare_and_swap(&k, b"", b"m").await {
        Err(StoreError::Immutable { key }) => assert_eq!(key, k),
        other => panic!("expected Immutable, got {other:?}"),
    }
    assert_eq!(store.get(&k).await.unwrap(), None);
}

async fn put_checks_content_address(fixture: Fixture) {
    let store = &fixture.store;
    let k = blob_key(BlobKind::Policy, b"test-policy");
    store.put(&k, b"test-policy").await.unwrap();
    store.put(&k, b"test-policy").await.unwrap(); // idempotent
    assert_eq!(
        store.get(&k).await.unwrap().as_deref(),
        Some(&b"test-policy"[..])
    );

    let hello = key("tests/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    store.put(&hello, b"hello").await.unwrap();
    match store.put(&hello, b"world").await {
        Err(StoreError::ContentMismatch { key, found }) => {
            assert_eq!(key, hello);
            assert_eq!(found, sha256(b"world"));
        }
        other => panic!("expected ContentMismatch, got {other:?}"),
    }
    assert_eq!(
        store.get(&hello).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    let mutable = Key::latest_transition();
    match store.put(&mutable, b"value").await {
        Err(StoreError::NotContentAddressed { key }) => assert_eq!(key, mutable),
        other => panic!("expected NotContentAddressed, got {other:?}"),
    }
    assert_eq!(store.get(&mutable).await.unwrap(), None);
}

/// A blob changed by a direct PUT to the API server is reported as corrupt; `put` repairs it.
async fn tampered_blob_is_detected(fixture: Fixture) {
    let store = &fixture.store;
    let k = blob_key(BlobKind::Transition, &[1u8; 64]);
    store.put(&k, &[1u8; 64]).await.unwrap();
    fixture.tamper(&k, &[2u8; 64]).await;
    match store.get(&k).await {
        Err(StoreError::Corrupt { key, found }) => {
            assert_eq!(key, k);
            assert_eq!(found, sha256(&[2u8; 64]));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    fixture.tamper(&k, b"").await;
    assert!(matches!(
        store.get(&k).await,
        Err(StoreError::Corrupt { .. })
    ));
    store.put(&k, &[1u8; 64]).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Some(vec![1u8; 64]));
    let absent = blob_key(BlobKind::Transition, b"absent");
    fixture.tamper(&k, b"x").await;
    let results = store.get_many(&[k.clone(), absent]).await;
    assert!(matches!(results[0], Err(StoreError::Corrupt { .. })));
    assert!(matches!(results[1], Ok(None)));
}

async fn list_names_sorted_per_kind(fixture: Fixture) {
    let store = &fixture.store;
    for bad in ["", "a/b", "..", "a b"] {
        assert!(
            matches!(store.list(bad).await, Err(StoreError::InvalidKey(_))),
            "list({bad:?}) must be rejected"
        );
    }
    assert_eq!(store.list("manifests").await.unwrap(), Vec::<String>::new());
    let mut expected = Vec::new();
    for manifest in [&b"one"[..], b"two", b"three"] {
        let k = blob_key(BlobKind::Manifest, manifest);
        store.put(&k, manifest).await.unwrap();
        expected.push(k.name().to_owned());
    }
    store
        .put(&blob_key(BlobKind::Policy, b"p"), b"p")
        .await
        .unwrap();
    store
        .compare_and_swap(&Key::latest_transition(), b"", b"head")
        .await
        .unwrap();
    expected.sort();
    assert_eq!(store.list("manifests").await.unwrap(), expected);
    assert_eq!(store.list("policies").await.unwrap().len(), 1);
    assert_eq!(store.list("transitions").await.unwrap(), vec!["latest"]);

    // `contrast-store-a-b-c` is both `a/b-c` and `a-b/c`: the binaryData entry tells them apart.
    store
        .compare_and_swap(&key("a-b/c"), b"", b"x")
        .await
        .unwrap();
    assert_eq!(store.list("a").await.unwrap(), Vec::<String>::new());
    assert_eq!(store.list("a-b").await.unwrap(), vec!["c"]);
    store
        .compare_and_swap(&key("a/b-d"), b"", b"y")
        .await
        .unwrap();
    assert_eq!(store.list("a").await.unwrap(), vec!["b-d"]);

    // ConfigMaps without the label are not the store's.
    let foreign = ConfigMap {
        metadata: ObjectMeta {
            name: Some("contrast-store-manifests-foreign".to_owned()),
            ..ObjectMeta::default()
        },
        binary_data: Some([("foreign".to_owned(), ByteString(b"f".to_vec()))].into()),
        ..ConfigMap::default()
    };
    fixture
        .raw
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    assert_eq!(store.list("manifests").await.unwrap(), expected);
}

/// `list` pages through many ConfigMaps.
async fn list_pages(fixture: Fixture) {
    let store = ConfigMapStore::new(
        fixture.client.clone(),
        &fixture.namespace,
        None,
        ConfigMapStoreOptions {
            list_page_size: 3,
            ..options()
        },
    );
    let mut expected = Vec::new();
    for i in 0..10u8 {
        let k = blob_key(BlobKind::Policy, &[i]);
        store.put(&k, &[i]).await.unwrap();
        expected.push(k.name().to_owned());
    }
    expected.sort();
    assert_eq!(store.list("policies").await.unwrap(), expected);
}

async fn watch_delivers_every_change_in_order(fixture: Fixture) {
    let store = &fixture.store;
    let k = Key::latest_transition();

    let mut early = store.watch(&k).await.unwrap();
    assert!(early.try_next().is_none());
    store.compare_and_swap(&k, b"", b"v0").await.unwrap();
    assert_eq!(next_within(&mut early).await, b"v0");

    let mut watch = store.watch(&k).await.unwrap();
    assert_eq!(watch.key(), &k);
    assert_eq!(next_within(&mut watch).await, b"v0");

    let mut previous = b"v0".to_vec();
    let values: Vec<Vec<u8>> = (1..=30).map(|i| format!("v{i}").into_bytes()).collect();
    for value in &values {
        store.compare_and_swap(&k, &previous, value).await.unwrap();
        previous.clone_from(value);
    }
    for watch in [&mut watch, &mut early] {
        for value in &values {
            assert_eq!(&next_within(watch).await, value);
        }
    }
    // Other keys are not this watch's business.
    store
        .compare_and_swap(&key("transitions/other"), b"", b"o")
        .await
        .unwrap();
    assert!(store.compare_and_swap(&k, b"v0", b"x").await.is_err());
    store.compare_and_swap(&k, b"v30", b"v30").await.unwrap();
    store.compare_and_swap(&k, b"v30", b"v31").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v31");
    drop(early);
    store.compare_and_swap(&k, b"v31", b"v32").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v32");
}

/// Many tasks race compare-and-swap on one key: one winner per round, never an overwrite.
async fn concurrent_writers_one_winner_per_round(fixture: Fixture) {
    const TASKS: usize = 6;
    const ROUNDS: usize = 8;
    let k = key("race/head");
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        // Separate stores (clients) per task, as separate Coordinator replicas.
        let store =
            ConfigMapStore::new(fixture.client.clone(), &fixture.namespace, None, options());
        let k = k.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let old = store.get(&k).await.unwrap().unwrap_or_default();
                barrier.wait().await;
                let new = format!("round {round} task {task}").into_bytes();
                match store.compare_and_swap(&k, &old, &new).await {
                    Ok(()) => won.push(true),
                    Err(StoreError::Conflict { .. }) => won.push(false),
                    Err(other) => panic!("unexpected error: {other}"),
                }
                barrier.wait().await;
            }
            won
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for round in 0..ROUNDS {
        let winners: Vec<usize> = (0..TASKS).filter(|task| results[*task][round]).collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
    }
    let last_winner = (0..TASKS).find(|task| results[*task][ROUNDS - 1]).unwrap();
    assert_eq!(
        fixture.store.get(&k).await.unwrap().unwrap(),
        format!("round {} task {last_winner}", ROUNDS - 1).into_bytes()
    );
}

/// The ConfigMap layout upstream uses (vector CM-name and §5.5).
async fn configmap_layout(fixture: Fixture) {
    // A real server's garbage collector deletes objects whose owner does not exist: there the
    // owner is a real (empty) StatefulSet; the fake server has no collector and no StatefulSets.
    let uid = if fixture.server.is_some() {
        "9a5b8f0e-1c2d-4e3f-8a9b-0c1d2e3f4a5b".to_owned()
    } else {
        real_statefulset_uid(&fixture).await
    };
    let owner = StatefulSetOwner {
        name: DEFAULT_STATEFULSET.to_owned(),
        uid,
    };
    let store = ConfigMapStore::new(
        fixture.client.clone(),
        &fixture.namespace,
        Some(owner.clone()),
        options(),
    );
    assert_eq!(store.owner(), Some(&owner));
    assert_eq!(store.namespace(), fixture.namespace);
    let latest = Key::latest_transition();
    store
        .compare_and_swap(&latest, b"", &[0xff, 0x00, 0x80])
        .await
        .unwrap();
    let blob = blob_key(BlobKind::Manifest, b"{}");
    store.put(&blob, b"{}").await.unwrap();

    let configmap = fixture
        .raw
        .get("contrast-store-transitions-latest")
        .await
        .unwrap();
    assert_eq!(
        configmap.binary_data.unwrap()["latest"].0,
        vec![0xff, 0x00, 0x80]
    );
    assert_eq!(configmap.data, None);
    assert_eq!(
        configmap.metadata.labels.unwrap()[MANAGED_BY_LABEL],
        MANAGED_BY_VALUE
    );
    let references = configmap.metadata.owner_references.unwrap();
    assert_eq!(references.len(), 1);
    assert_eq!(
        (
            references[0].api_version.as_str(),
            references[0].kind.as_str(),
            references[0].name.as_str(),
            references[0].uid.as_str()
        ),
        ("apps/v1", "StatefulSet", "coordinator", owner.uid.as_str())
    );
    let configmap = fixture
        .raw
        .get(&format!("contrast-store-manifests-{}", blob.name()))
        .await
        .unwrap();
    assert_eq!(configmap.binary_data.unwrap()[blob.name()].0, b"{}");
}

/// Creates an empty StatefulSet named like the Coordinator's in the fixture's namespace (on a
/// real server) and returns its UID, so its ConfigMaps have an owner that exists.
async fn real_statefulset_uid(fixture: &Fixture) -> String {
    use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let labels = std::collections::BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        "contrast-store-test-owner".to_owned(),
    )]);
    let statefulset = StatefulSet {
        metadata: ObjectMeta {
            name: Some(DEFAULT_STATEFULSET.to_owned()),
            ..ObjectMeta::default()
        },
        spec: StatefulSetSpec {
            replicas: Some(0),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "owner".to_owned(),
                        image: Some("registry.k8s.io/pause:3.9".to_owned()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    };
    Api::<StatefulSet>::namespaced(fixture.client.clone(), &fixture.namespace)
        .create(&PostParams::default(), &statefulset)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

/// What the store relies on, checked on the server itself: stale versions conflict, creates
/// collide, no-op updates write nothing, and the size limit holds.
async fn server_semantics(fixture: Fixture) {
    let raw = &fixture.raw;
    let object = ConfigMap {
        metadata: ObjectMeta {
            name: Some("semantics".to_owned()),
            ..ObjectMeta::default()
        },
        binary_data: Some([("v".to_owned(), ByteString(b"1".to_vec()))].into()),
        ..ConfigMap::default()
    };
    let created = raw.create(&PostParams::default(), &object).await.unwrap();
    let error = raw
        .create(&PostParams::default(), &object)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists"),
        "{error}"
    );

    let mut changed = created.clone();
    changed.binary_data = Some([("v".to_owned(), ByteString(b"2".to_vec()))].into());
    let replaced = raw
        .replace("semantics", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    // `changed` still carries the version it was read at: stale now.
    let error = raw
        .replace("semantics", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 409 && status.reason == "Conflict"),
        "{error}"
    );
    let unchanged = raw
        .replace("semantics", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        unchanged.metadata.resource_version,
        replaced.metadata.resource_version
    );
    let error = raw.get("absent").await.unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 404),
        "{error}"
    );

    // A value over the ConfigMap limit: the store names the object and the server's reason.
    let too_big = vec![0u8; 1024 * 1024 + 1];
    let error = kubernetes_error(
        fixture
            .store
            .compare_and_swap(&key("big/value"), b"", &too_big)
            .await,
    );
    assert_eq!(error.operation, Operation::Create);
    assert_eq!(
        error.object,
        format!("configmap {}/contrast-store-big-value", fixture.namespace)
    );
    assert!(
        matches!(&error.reason, KubernetesFailure::Api { code: 422, .. }),
        "{error}"
    );
}

/// `kubectl` creates ConfigMaps through the same API; the store reads them (a UTF-8 file lands
/// in `data`, anything else in `binaryData`) and `kubectl get` shows what the store wrote.
async fn kubectl_interop(fixture: Fixture) {
    let Some(kubectl) = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
    else {
        println!("skipping kubectl_interop: kubectl is not installed");
        return;
    };
    if let Some(server) = &fixture.server {
        // client-go drops credentials on plain HTTP (the fake has no TLS): let anonymous in.
        server.allow_anonymous(true);
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&fixture.kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["-n", &fixture.namespace])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };

    let text = dir.path().join("latest");
    std::fs::write(&text, "text head").unwrap();
    run(&[
        "create",
        "configmap",
        "contrast-store-transitions-latest",
        &format!("--from-file=latest={}", text.display()),
    ]);
    let blob = [0xffu8, 0xfe, 0x00, 0x01];
    let blob_key = blob_key(BlobKind::Transition, &blob);
    let binary = dir.path().join("blob");
    std::fs::write(&binary, blob).unwrap();
    run(&[
        "create",
        "configmap",
        &blob_key.configmap_name(),
        &format!("--from-file={}={}", blob_key.name(), binary.display()),
    ]);

    let store = &fixture.store;
    let latest = Key::latest_transition();
    assert_eq!(
        store.get(&latest).await.unwrap().as_deref(),
        Some(&b"text head"[..])
    );
    assert_eq!(
        store.get(&blob_key).await.unwrap().as_deref(),
        Some(&blob[..])
    );
    store
        .compare_and_swap(&latest, b"text head", &[0x80, 0x81])
        .await
        .unwrap();

    let shown: serde_json::Value = serde_json::from_slice(&run(&[
        "get",
        "configmap",
        "contrast-store-transitions-latest",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(shown["binaryData"], json!({"latest": "gIE="}));
    assert_eq!(shown.get("data"), None, "the value moved out of data");
    assert_eq!(
        shown["metadata"]["labels"][MANAGED_BY_LABEL],
        MANAGED_BY_VALUE
    );
}

// ---------------------------------------------------------------- only against the fake

/// A watch resumes from its last version after the server drops the connection, and misses
/// nothing written meanwhile.
async fn watch_survives_disconnect(fixture: Fixture) {
    let store = &fixture.store;
    let server = fixture.server();
    let k = Key::latest_transition();
    store.compare_and_swap(&k, b"", b"v1").await.unwrap();
    let mut watch = store.watch(&k).await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v1");
    for round in 0..3 {
        // Drop the watch only once its resumed request is open (else there is nothing to drop).
        wait_for_watch_requests(server, round + 1).await;
        server.drop_watches();
        let old = format!("v{}", round + 1);
        let middle = format!("v{round}-between");
        let new = format!("v{}", round + 2);
        store
            .compare_and_swap(&k, old.as_bytes(), middle.as_bytes())
            .await
            .unwrap();
        store
            .compare_and_swap(&k, middle.as_bytes(), new.as_bytes())
            .await
            .unwrap();
        assert_eq!(next_within(&mut watch).await, middle.as_bytes());
        assert_eq!(next_within(&mut watch).await, new.as_bytes());
    }
    let requests = server.requests();
    let watches: Vec<&String> = requests
        .iter()
        .filter(|request| request.contains("watch=true"))
        .collect();
    assert!(watches.len() >= 4, "{watches:#?}");
    for request in &watches {
        assert!(
            request.contains("fieldSelector=metadata.name%3Dcontrast-store-transitions-latest"),
            "{request}"
        );
        assert!(
            request.contains(
                "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dcontrast.edgeless.systems"
            ),
            "{request}"
        );
        assert!(!request.contains("resourceVersion=0&") && !request.ends_with("resourceVersion=0"));
    }
    // Resuming never needed a new list.
    let lists = requests
        .iter()
        .filter(|request| {
            request.starts_with("GET")
                && request.contains("/configmaps?")
                && !request.contains("watch=true")
        })
        .count();
    assert_eq!(lists, 1, "{requests:#?}");
}

async fn wait_for_watch_requests(server: &FakeApiServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let made = server
            .requests()
            .iter()
            .filter(|request| request.contains("watch=true"))
            .count();
        if made >= count && server.open_watches() == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "no watch request {count}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// After the server compacted the watch's version away (410 Expired), the watch lists again and
/// delivers the current value.
async fn watch_relists_after_gone(fixture: Fixture) {
    let store = &fixture.store;
    let server = fixture.server();
    let k = Key::latest_transition();
    store.compare_and_swap(&k, b"", b"v1").await.unwrap();
    let mut watch = store.watch(&k).await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v1");
    // Versions move on without an event for this watch; then history is gone.
    store
        .compare_and_swap(&key("other/key"), b"", b"x")
        .await
        .unwrap();
    server.compact();
    server.drop_watches();
    store.compare_and_swap(&k, b"v1", b"v2").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v2");
    store.compare_and_swap(&k, b"v2", b"v3").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"v3");
    let lists = server
        .requests()
        .iter()
        .filter(|request| {
            request.starts_with("GET")
                && request.contains("/configmaps?")
                && !request.contains("watch=true")
        })
        .count();
    assert!(lists >= 2, "the watch listed again");
}

/// The server ends each watch request after `timeoutSeconds`; the store starts the next one.
async fn watch_continues_after_server_timeout(fixture: Fixture) {
    let store = ConfigMapStore::new(
        fixture.client.clone(),
        &fixture.namespace,
        None,
        ConfigMapStoreOptions {
            watch_timeout: Duration::from_secs(1),
            ..options()
        },
    );
    let k = Key::latest_transition();
    let mut watch = store.watch(&k).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    store.compare_and_swap(&k, b"", b"after").await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"after");
    let watches = fixture
        .server()
        .requests()
        .iter()
        .filter(|request| request.contains("watch=true"))
        .count();
    assert!(watches >= 2);
}

/// Dropping the `Watch` closes its connection.
async fn dropped_watch_closes_connection(fixture: Fixture) {
    let k = Key::latest_transition();
    let watch = fixture.store.watch(&k).await.unwrap();
    let server = fixture.server();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.open_watches() == 0 {
        assert!(Instant::now() < deadline, "the watch never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(watch);
    // The fake notices a gone client at its next write.
    fixture.store.compare_and_swap(&k, b"", b"x").await.unwrap();
    while server.open_watches() != 0 {
        assert!(Instant::now() < deadline, "the watch stayed open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A wrong token is a 401 (authentication fails before authorisation, as on a real API
/// server), a token without rights in the namespace a 403; both name the operation and the
/// object.
async fn forbidden_names_the_object(fixture: Fixture) {
    let server = fixture.server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        kubeconfig_yaml(server.url(), NAMESPACE, "wrong-token"),
    )
    .unwrap();
    let client = client_from_kubeconfig(&path).await;
    let store = ConfigMapStore::new(client, NAMESPACE, None, options());
    let k = Key::latest_transition();

    let error = kubernetes_error(store.get(&k).await);
    assert_eq!(error.operation, Operation::Get);
    assert_eq!(
        error.object,
        "configmap contrast-test/contrast-store-transitions-latest"
    );
    match &error.reason {
        KubernetesFailure::Api { code, reason, .. } => {
            assert_eq!((*code, reason.as_str()), (401, "Unauthorized"));
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let text = StoreError::from(error).to_string();
    assert!(
        text.starts_with("get configmap contrast-test/contrast-store-transitions-latest failed: the API server answered 401 Unauthorized"),
        "{text}"
    );

    let error = kubernetes_error(store.list("manifests").await);
    assert_eq!(error.operation, Operation::List);
    assert_eq!(error.object, "configmaps in namespace contrast-test");
    let error = kubernetes_error(store.watch(&k).await);
    assert_eq!(error.operation, Operation::List);
    assert!(error.object.ends_with("contrast-store-transitions-latest"));
    let blob = blob_key(BlobKind::Policy, b"p");
    let error = kubernetes_error(store.put(&blob, b"p").await);
    assert_eq!(error.operation, Operation::Create);
    assert!(error.reason.to_string().contains("401 Unauthorized"));

    // A namespace the (valid) token is not for is forbidden.
    let elsewhere = ConfigMapStore::new(fixture.client.clone(), "kube-system", None, options());
    let error = kubernetes_error(elsewhere.get(&k).await);
    match &error.reason {
        KubernetesFailure::Api {
            code,
            reason,
            message,
        } => {
            assert_eq!((*code, reason.as_str()), (403, "Forbidden"));
            assert!(
                message.contains("cannot get resource \"configmaps\""),
                "{message}"
            );
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    assert!(error.object.starts_with("configmap kube-system/"));
    assert!(
        StoreError::from(error)
            .to_string()
            .contains("the API server answered 403 Forbidden")
    );
}

/// Every call gives up after the timeout when the server never answers.
async fn calls_time_out(_fixture: Fixture) {
    let silent = SilentServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig_yaml(silent.url(), NAMESPACE, TOKEN)).unwrap();
    let client = client_from_kubeconfig(&path).await;
    let timeout = Duration::from_millis(300);
    let store = ConfigMapStore::new(
        client.clone(),
        NAMESPACE,
        None,
        ConfigMapStoreOptions {
            timeout,
            ..options()
        },
    );
    let k = Key::latest_transition();
    let started = Instant::now();
    let error = kubernetes_error(store.get(&k).await);
    assert!(matches!(error.reason, KubernetesFailure::Timeout(t) if t == timeout));
    assert_eq!(
        error.to_string(),
        "get configmap contrast-test/contrast-store-transitions-latest failed: no answer within 300ms"
    );
    assert!(matches!(
        kubernetes_error(store.compare_and_swap(&k, b"", b"x").await).reason,
        KubernetesFailure::Timeout(_)
    ));
    assert!(matches!(
        kubernetes_error(store.watch(&k).await).reason,
        KubernetesFailure::Timeout(_)
    ));
    assert!(matches!(
        kubernetes_error(store.list("manifests").await).reason,
        KubernetesFailure::Timeout(_)
    ));
    let error = discover_owner(client, NAMESPACE, "coordinator-0", "coordinator", timeout)
        .await
        .unwrap_err();
    assert!(matches!(error.reason, KubernetesFailure::Timeout(_)));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// The owner is found through the pod's owner references.
async fn discover_finds_the_statefulset(fixture: Fixture) {
    let server = fixture.server();
    let uid = "5c1d7a2e-0000-4000-8000-000000000001";
    server.add_pod(
        "coordinator-0",
        json!([
            {"apiVersion": "v1", "kind": "Node", "name": "coordinator", "uid": "not-this"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "coordinator", "uid": uid,
             "controller": true, "blockOwnerDeletion": true},
        ]),
    );
    server.add_pod("orphan", json!([]));
    let store = ConfigMapStore::discover(
        fixture.client.clone(),
        NAMESPACE,
        "coordinator-0",
        DEFAULT_STATEFULSET,
        options(),
    )
    .await
    .unwrap();
    assert_eq!(
        store.owner(),
        Some(&StatefulSetOwner {
            name: "coordinator".to_owned(),
            uid: uid.to_owned()
        })
    );
    store
        .compare_and_swap(&Key::latest_transition(), b"", b"h")
        .await
        .unwrap();
    let stored = server
        .configmap("contrast-store-transitions-latest")
        .unwrap();
    assert_eq!(stored["metadata"]["ownerReferences"][0]["uid"], uid);
    assert_eq!(stored["binaryData"]["latest"], "aA==");

    let error = ConfigMapStore::discover(
        fixture.client.clone(),
        NAMESPACE,
        "orphan",
        DEFAULT_STATEFULSET,
        options(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.operation, Operation::GetPod);
    assert_eq!(error.object, "pod contrast-test/orphan");
    assert_eq!(
        error.to_string(),
        "get pod contrast-test/orphan failed: it has no owner reference to apps/v1 StatefulSet \"coordinator\""
    );
    let error = discover_owner(
        fixture.client.clone(),
        NAMESPACE,
        "missing",
        "coordinator",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(error.reason.is_not_found(), "{error}");
}

/// A tampered blob reaches a watcher as a corruption error, not as a value.
async fn watch_reports_corrupt_blob(fixture: Fixture) {
    let k = blob_key(BlobKind::Manifest, b"m");
    fixture.store.put(&k, b"m").await.unwrap();
    let mut watch = fixture.store.watch(&k).await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"m");
    fixture.tamper(&k, b"evil").await;
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(next, Err(StoreError::Corrupt { .. })), "{next:?}");
}

/// The bundle the generic conformance suite can take: a store on a fake server built from a
/// plain `kube::Config`, and tampering straight in the server's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_backed_store_for_the_conformance_suite() {
    let backend = support::FakeBackedStore::start().await;
    let k = blob_key(BlobKind::Policy, b"p");
    backend.put(&k, b"p").await.unwrap();
    let mut watch = backend.watch(&k).await.unwrap();
    assert_eq!(next_within(&mut watch).await, b"p");
    backend.tamper(&k, b"q");
    assert!(matches!(
        watch.next().await,
        Some(Err(StoreError::Corrupt { .. }))
    ));
    assert!(matches!(
        backend.get(&k).await,
        Err(StoreError::Corrupt { .. })
    ));
    backend.put(&k, b"p").await.unwrap();
    assert_eq!(backend.get(&k).await.unwrap().as_deref(), Some(&b"p"[..]));
    let latest = Key::latest_transition();
    backend.tamper(&latest, b"forged");
    assert_conflict(backend.compare_and_swap(&latest, b"", b"h").await, &latest);
    assert_eq!(backend.list("transitions").await.unwrap(), vec!["latest"]);
}

// ---------------------------------------------------------------- test entry points

macro_rules! against_fake {
    ($($check:ident),* $(,)?) => {
        mod fake {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Fixture::fake().await).await;
                }
            )*
        }
    };
}

macro_rules! against_real {
    ($($check:ident),* $(,)?) => {
        mod real {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    if let Some(fixture) = super::Fixture::real(stringify!($check)).await {
                        super::$check(fixture).await;
                    }
                }
            )*
        }
    };
}

macro_rules! backend_suite {
    ($($check:ident),* $(,)?) => {
        against_real!($($check),*);
        against_fake!(
            $($check,)*
            watch_survives_disconnect,
            watch_relists_after_gone,
            watch_continues_after_server_timeout,
            dropped_watch_closes_connection,
            forbidden_names_the_object,
            calls_time_out,
            discover_finds_the_statefulset,
        );
    };
}

backend_suite!(
    cas_absent_equals_empty,
    cas_lost_race_and_same_value,
    cas_refuses_content_addressed,
    put_checks_content_address,
    tampered_blob_is_detected,
    list_names_sorted_per_kind,
    list_pages,
    watch_delivers_every_change_in_order,
    watch_reports_corrupt_blob,
    concurrent_writers_one_winner_per_round,
    configmap_layout,
    server_semantics,
    kubectl_interop,
);
