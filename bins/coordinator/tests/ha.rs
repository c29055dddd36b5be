//! High availability: three Coordinators sharing one store recover each other. The same
//! scenario runs on a file store (static peers) and on ConfigMaps of an in-process Kubernetes
//! API server (peers discovered through pod objects) and, when `CONTRAST_TEST_KUBECONFIG`
//! names a kubeconfig, of a real one (the test creates the pod objects and plays their
//! kubelet; the Coordinators run as local processes).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use contrast_core::api::{ErrorCode, SetManifestRequest};
use contrast_testkit::apiserver::FakeApiServer;
use contrast_testkit::fixtures::*;
use contrast_testkit::net::*;
use contrast_testkit::process::CoordinatorProcess;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const INTERVAL: &str = "200ms";

fn replicas(state_dir: &std::path::Path) -> Vec<CoordinatorProcess> {
    let ports: Vec<[u16; 4]> = (0..3)
        .map(|_| [free_port(), free_port(), free_port(), free_port()])
        .collect();
    (0..3)
        .map(|i| {
            let mut args = vec!["--recovery-interval".to_owned(), INTERVAL.to_owned()];
            for (j, peer) in ports.iter().enumerate() {
                if j != i {
                    args.push("--peer".into());
                    args.push(format!("127.0.0.1:{}=127.0.0.1:{}", peer[1], peer[3]));
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            CoordinatorProcess::start_on(state_dir, ports[i], &args)
        })
        .collect()
}

fn request(workloads: &[Workload], previous: Option<Vec<u8>>) -> SetManifestRequest {
    SetManifestRequest {
        manifest: manifest(workloads, default_owner_keys()),
        policies: policies(workloads),
        previous_transition_hash: previous,
        signature: None,
    }
}

async fn heads(replicas: &[CoordinatorProcess]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for replica in replicas {
        out.push(
            replica
                .user_client(None)
                .get_manifests()
                .await
                .ok()
                .map(|h| h.value.latest_transition.transition_hash),
        );
    }
    out
}

async fn converge(replicas: &[CoordinatorProcess], timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        // Readiness is a cheap plain-HTTP probe; the heads (one aTLS call each) are compared
        // only once every replica is active.
        if replicas.iter().all(|r| r.readiness() == 200) {
            let heads = heads(replicas).await;
            if let Some(Some(first)) = heads.first()
                && heads.iter().all(|h| h.as_ref() == Some(first))
            {
                return first.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {:?}",
            heads(replicas).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_recover_each_other_and_resolve_races() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let replicas = replicas(&state_dir);
    recover_each_other_and_resolve_races(dir.path(), replicas, 30).await;
}

/// Set a manifest on the first replica; the others become active by peer recovery. Kill -9
/// the second and restart it: it recovers from a peer. Every replica serves initializers
/// with the same mesh CA. Then race updates on two replicas: one linear history.
/// `rounds` races run unless `CONTRAST_HA_ROUNDS` says otherwise.
async fn recover_each_other_and_resolve_races(
    dir: &std::path::Path,
    mut replicas: Vec<CoordinatorProcess>,
    rounds: usize,
) {
    let web = Workload::new("web");

    // Set on one; the others become active by peer recovery, without any user action.
    let first = replicas[0]
        .user_client(None)
        .set_manifest(&request(std::slice::from_ref(&web), None))
        .await
        .unwrap();
    for replica in &replicas {
        replica.wait_for("/probe/readiness", 200, Duration::from_secs(10));
    }
    converge(&replicas, Duration::from_secs(10)).await;

    // Kill -9 one and restart it: it recovers from a peer and serves initializers with the
    // same mesh CA key (its certificate verifies against the mesh CA the first replica issued).
    let restarted = replicas.remove(1).kill9_and_restart();
    restarted.wait_for("/probe/readiness", 200, Duration::from_secs(10));
    replicas.insert(1, restarted);
    for (i, replica) in replicas.iter().enumerate() {
        let root = dir.join(format!("web-{i}"));
        let output = run_initializer(replica, &web, &root, &["--max-attempts", "5"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        verify_chain(
            &std::fs::read(root.join("tls-config/certChain.pem")).unwrap(),
            &first.value.mesh_ca,
        )
        .unwrap();
    }

    // Races: two replicas accept updates at once; one wins, the other gets a conflict, and
    // everyone converges to one linear history.
    // The 200 rounds take about 5 minutes in a debug build on 2 busy cores; CI runs
    // fewer, and `CONTRAST_HA_ROUNDS=200 cargo test -p coordinator --test ha` runs the full count.
    let rounds: usize = std::env::var("CONTRAST_HA_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(rounds);
    let mut wins = 0;
    for round in 0..rounds {
        let a = [web.clone(), Workload::new(&format!("a{round}"))];
        let c = [web.clone(), Workload::new(&format!("c{round}"))];
        let key = || Some(owner_atls_key(&owners().workload));
        let (client_a, client_c) = (
            replicas[0].user_client(key()),
            replicas[2].user_client(key()),
        );
        let (request_a, request_c) = (request(&a, None), request(&c, None));
        let (left, right) = tokio::join!(
            client_a.set_manifest(&request_a),
            client_c.set_manifest(&request_c),
        );
        let outcomes = [&left, &right];
        let won = outcomes.iter().filter(|r| r.is_ok()).count();
        assert!(won <= 1, "round {round}: both updates won");
        for result in outcomes.iter().filter_map(|r| r.as_ref().err()) {
            let code = result.api_code().cloned();
            // Both are upstream's FailedPrecondition (lost compare-and-swap, stale replica).
            assert_eq!(
                result.grpc_code(),
                Some(tonic::Code::FailedPrecondition),
                "round {round}: {result:?}"
            );
            assert!(
                matches!(
                    code,
                    Some(ErrorCode::ManifestConflict | ErrorCode::NeedsRecovery)
                ),
                "round {round}: {result:?}"
            );
        }
        wins += won;
        converge(&replicas, Duration::from_secs(10)).await;
    }
    let history = replicas[1].user_client(None).get_manifests().await.unwrap();
    assert_eq!(history.value.manifests.len(), 1 + wins);
    contrast_sdk::verify_deployment(&history.value).unwrap();
    assert!(wins > 0);
}

fn ports() -> [u16; 4] {
    [free_port(), free_port(), free_port(), free_port()]
}

fn peer_flag(peer: &CoordinatorProcess) -> String {
    format!("{}={}", peer.mesh, peer.ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_the_coordinator_role_or_with_another_measurement_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let active = CoordinatorProcess::start(&state_dir, &["--metrics"]);
    let web = Workload::new("web");
    let first = active
        .user_client(None)
        .set_manifest(&request(std::slice::from_ref(&web), None))
        .await
        .unwrap();
    let peer = peer_flag(&active);

    // A VM whose HOST_DATA is a workload's (role none) asks for the state.
    let workload_vm = CoordinatorProcess::start_as(
        &state_dir,
        ports(),
        &web,
        &["--recovery-interval", INTERVAL, "--peer", &peer],
        true,
    );
    // A VM with the Coordinator's HOST_DATA but another measurement.
    let measurement = "11".repeat(48);
    let impostor = CoordinatorProcess::start_as(
        &state_dir,
        ports(),
        &coordinator_workload(),
        &[
            "--recovery-interval",
            INTERVAL,
            "--peer",
            &peer,
            "--sim-measurement",
            &measurement,
        ],
        true,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(workload_vm.readiness(), 503);
    assert_eq!(impostor.readiness(), 503);
    let (_, metrics) = http_get(&active.ops, "/metrics").unwrap();
    assert!(
        metrics.contains("endpoint=\"peer\",result=\"denied\",reason=\"not_coordinator\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("endpoint=\"peer\",result=\"denied\",reason=\"reference_values\""),
        "{metrics}"
    );
    assert!(
        workload_vm.log_text().contains("not allowed to recover"),
        "{}",
        workload_vm.log_text()
    );
    assert!(
        !metrics.contains("endpoint=\"peer\",result=\"ok\""),
        "{metrics}"
    );

    // A seed-share owner's recovery is refused while a recovered peer is ready …
    let shares = contrast_core::seedshare::SeedShareDocument::from(
        first.value.seed_shares_doc.clone().unwrap(),
    );
    let seed = shares.seed_shares[0].decrypt(&owners().seedshare).unwrap();
    let mut recover = contrast_core::api::RecoverRequest {
        seed: zeroize::Zeroizing::new(seed.to_vec()),
        salt: shares.salt.clone(),
        force: false,
        history_contains: None,
    };
    let key =
        || contrast_attest::atls::AtlsKey::rsa_from_pkcs8_der(&owners().seedshare_pkcs8).unwrap();
    // This VM attests with the workload's HOST_DATA, so the client must expect that.
    let client = || {
        let validator = contrast_attest::AtlsValidator::new(contrast_attest::Verifier::new(
            &[environment().1.reference_values()],
            coordinator_validator()
                .verifier()
                .policy()
                .clone()
                .with_expected_host_data(Some(vec![web.host_data()])),
        ));
        contrast_sdk::CoordinatorClient::new(
            workload_vm.user.clone(),
            contrast_attest::AtlsClient::new(validator).with_key(std::sync::Arc::new(key())),
        )
    };
    let refused = client().recover(&recover).await;
    let error = refused.unwrap_err();
    assert_eq!(error.api_code(), Some(&ErrorCode::AlreadyRecovered));
    assert_eq!(error.grpc_code(), Some(tonic::Code::FailedPrecondition));
    assert!(
        error
            .to_string()
            .contains("1 recovered peers are available"),
        "{error}"
    );
    assert_eq!(workload_vm.readiness(), 503);
    // … and allowed when forced.
    recover.force = true;
    client().recover(&recover).await.unwrap();
    workload_vm.wait_for("/probe/readiness", 200, Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_from_a_peer_at_another_head_fails_safely() {
    let dir = tempfile::tempdir().unwrap();
    let ahead_dir = dir.path().join("ahead");
    let behind_dir = dir.path().join("behind");
    let ahead = CoordinatorProcess::start(&ahead_dir, &[]);
    let web = Workload::new("web");
    ahead
        .user_client(None)
        .set_manifest(&request(std::slice::from_ref(&web), None))
        .await
        .unwrap();
    // A second store holds generation 1; the peer moves on to generation 2.
    copy_dir(&ahead_dir, &behind_dir);
    ahead
        .user_client(Some(owner_atls_key(&owners().workload)))
        .set_manifest(&request(&[web.clone(), Workload::new("db")], None))
        .await
        .unwrap();
    let before = snapshot(&behind_dir);
    let behind = CoordinatorProcess::start_as(
        &behind_dir,
        ports(),
        &coordinator_workload(),
        &[
            "--recovery-interval",
            INTERVAL,
            "--peer",
            &peer_flag(&ahead),
        ],
        true,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(behind.readiness(), 503);
    assert!(
        behind
            .log_text()
            .contains("the peer serves another manifest"),
        "{}",
        behind.log_text()
    );
    assert_eq!(
        snapshot(&behind_dir),
        before,
        "a failed recovery changed the store"
    );
}

const NAMESPACE: &str = "contrast";
const TOKEN: &str = "coordinator-service-account-token";
/// Names the kubeconfig of a real cluster to run the ConfigMap scenario against as well.
const REAL_KUBECONFIG: &str = "CONTRAST_TEST_KUBECONFIG";
/// The StatefulSet the replicas' pods and the store's ConfigMaps belong to.
const STATEFULSET: &str = "coordinator";
/// Labels a namespace this test created on a real cluster (left behind only by a crash).
const TEST_NAMESPACE_LABEL: &str = "contrast-ha-test";

/// Where the replicas' pod objects live: the in-process fake API server, or a fresh namespace
/// of the real cluster named by [`REAL_KUBECONFIG`]. Setup and the kubelet's part (pod IP,
/// `Ready`) go through the API with the real `kube` client in both cases, so the fake run
/// exercises what a real run does.
struct Cluster {
    client: kube::Client,
    namespace: String,
    kubeconfig: std::path::PathBuf,
    fake: Option<Arc<FakeApiServer>>,
}

impl Cluster {
    async fn fake(dir: &std::path::Path) -> Cluster {
        let server = Arc::new(FakeApiServer::start(NAMESPACE, TOKEN).await);
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: coordinator\n\
                 current-context: fake\nusers:\n- name: coordinator\n  user:\n    token: {TOKEN}\n",
                server.url()
            ),
        )
        .unwrap();
        Cluster {
            client: client_from_kubeconfig(&kubeconfig).await,
            namespace: NAMESPACE.to_owned(),
            kubeconfig,
            fake: Some(server),
        }
    }

    /// A fresh namespace of the real cluster, or `None` (saying why) without one.
    async fn real() -> Option<Cluster> {
        let Some(path) = std::env::var_os(REAL_KUBECONFIG) else {
            println!(
                "skipping the HA scenario against a real API server: set {REAL_KUBECONFIG} to a kubeconfig to run it"
            );
            return None;
        };
        let kubeconfig = std::path::PathBuf::from(path);
        let client = client_from_kubeconfig(&kubeconfig).await;
        let namespace = format!("contrast-ha-test-{}", std::process::id());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let object: Namespace = serde_json::from_value(json!({
            "metadata": {"name": namespace, "labels": {TEST_NAMESPACE_LABEL: "true"}},
        }))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        Some(Cluster {
            client,
            namespace,
            kubeconfig,
            fake: None,
        })
    }

    /// Creates the (empty) StatefulSet that owns the pods and the ConfigMaps; its uid. Its
    /// selector matches none of the pods, so a real StatefulSet controller neither adopts nor
    /// deletes them, while the garbage collector sees a live owner.
    async fn create_statefulset(&self) -> String {
        let statefulsets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let labels = json!({"contrast-ha-test/owner-only": "true"});
        let object: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": STATEFULSET},
            "spec": {
                "replicas": 0,
                "serviceName": STATEFULSET,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "coordinator", "image": "registry.invalid/none"}]},
                },
            },
        }))
        .unwrap();
        let created = statefulsets
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        created.metadata.uid.unwrap()
    }

    /// Creates a pod object that nothing runs (its node selector matches no node); the test's
    /// processes play it, [`Cluster::set_pod_status`] plays its kubelet.
    async fn create_pod(
        &self,
        name: &str,
        labels: serde_json::Value,
        annotations: serde_json::Value,
        owner_uid: Option<&str>,
    ) {
        let owners: Vec<serde_json::Value> = owner_uid
            .map(|uid| {
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": STATEFULSET,
                       "uid": uid, "controller": false, "blockOwnerDeletion": false})
            })
            .into_iter()
            .collect();
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "annotations": annotations,
                         "ownerReferences": owners},
            "spec": {
                "nodeSelector": {"contrast-ha-test/no-such-node": "true"},
                "containers": [{"name": "coordinator", "image": "registry.invalid/none"}],
            },
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }

    /// The kubelet's status update: the pod's IP, `Running`, and its `Ready` condition (a
    /// strategic merge patch, so other conditions are kept).
    async fn set_pod_status(&self, name: &str, ip: &str, ready: bool) {
        let patch = json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        }});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap();
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn configmap(&self, name: &str) -> ConfigMap {
        Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
            .get(name)
            .await
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.fake.is_some() {
            return;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let namespace = self.namespace.clone();
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                if let Err(error) = namespaces
                    .delete(&namespace, &DeleteParams::default())
                    .await
                {
                    eprintln!("could not delete the test namespace {namespace}: {error}");
                }
            });
        });
    }
}

async fn client_from_kubeconfig(path: &std::path::Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Plays the kubelet for the replicas' pods: a readiness probe every 100 ms, and a status
/// patch through the API when the answer changes. Stops when dropped.
struct Kubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// `pods`: pod name, pod IP and the replica's ops address (the readiness probe).
    fn start(cluster: Arc<Cluster>, pods: Vec<(String, String, String)>) -> Kubelet {
        let task = tokio::spawn(async move {
            let mut reported: Vec<Option<bool>> = vec![None; pods.len()];
            loop {
                for (i, (pod, ip, ops)) in pods.iter().enumerate() {
                    let ops = ops.clone();
                    let ready = tokio::task::spawn_blocking(move || {
                        http_get(&ops, "/probe/readiness").is_ok_and(|(s, _)| s == 200)
                    })
                    .await
                    .unwrap();
                    if reported[i] != Some(ready) {
                        cluster.set_pod_status(pod, ip, ready).await;
                        reported[i] = Some(ready);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Kubelet { task }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The same scenario with `--store kubernetes`: the history lives in ConfigMaps of an
/// in-process API server, and each replica finds its peers by listing the Coordinator pods
/// (label `app.kubernetes.io/name=coordinator`, role annotation `coordinator`, `Ready`). As in
/// a cluster every pod has its own IP (127.0.0.2–4) and all serve the mesh API on one port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_configmaps_find_each_other_through_pods() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::fake(dir.path()).await;
    replicas_on_configmaps(cluster, dir.path()).await;
}

/// The ConfigMap scenario against the real cluster of [`REAL_KUBECONFIG`], in a fresh
/// namespace deleted afterwards; skipped (saying so) without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_configmaps_of_a_real_api_server() {
    let Some(cluster) = Cluster::real().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    replicas_on_configmaps(cluster, dir.path()).await;
}

async fn replicas_on_configmaps(cluster: Cluster, dir: &std::path::Path) {
    let cluster = Arc::new(cluster);
    let statefulset_uid = cluster.create_statefulset().await;
    let mesh_port = free_port();
    // A ready pod that is not a Coordinator must never be asked for secrets.
    cluster
        .create_pod(
            "web-0",
            json!({"app.kubernetes.io/name": "web"}),
            json!({"contrast.edgeless.systems/pod-role": "coordinator"}),
            None,
        )
        .await;
    cluster.set_pod_status("web-0", "127.0.0.9", true).await;

    let env = [(
        "KUBECONFIG".to_owned(),
        cluster.kubeconfig.to_str().unwrap().to_owned(),
    )];
    let mut pods = Vec::new();
    let mut replicas = Vec::new();
    for i in 0..3 {
        let pod = format!("coordinator-{i}");
        let ip = format!("127.0.0.{}", i + 2);
        cluster
            .create_pod(
                &pod,
                json!({"app.kubernetes.io/name": "coordinator"}),
                json!({"contrast.edgeless.systems/pod-role": "coordinator"}),
                Some(&statefulset_uid),
            )
            .await;
        cluster.set_pod_status(&pod, &ip, false).await;
        let local = |port: u16| format!("127.0.0.1:{port}");
        let addrs = [
            local(free_port()),
            format!("{ip}:{mesh_port}"),
            local(free_port()),
            local(free_port()),
        ];
        let replica = CoordinatorProcess::start_with(
            &dir.join(&pod),
            addrs,
            &coordinator_workload(),
            &[
                "--store",
                "kubernetes",
                "--namespace",
                &cluster.namespace,
                "--pod-name",
                &pod,
                "--recovery-interval",
                INTERVAL,
            ],
            &env,
            true,
        );
        pods.push((pod, ip, replica.ops.clone()));
        replicas.push(replica);
    }
    let kubelet = Kubelet::start(Arc::clone(&cluster), pods);

    recover_each_other_and_resolve_races(dir, replicas, 10).await;
    drop(kubelet);

    // The history is in ConfigMaps owned by the StatefulSet.
    let head = cluster.configmap("contrast-store-transitions-latest").await;
    let owner = &head
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("StatefulSet", STATEFULSET, statefulset_uid.as_str())
    );
    assert_eq!(
        head.metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("app.kubernetes.io/managed-by"))
            .map(String::as_str),
        Some("contrast.edgeless.systems")
    );
    if let Some(server) = &cluster.fake {
        // Discovery listed pods by label (only the fake logs requests).
        assert!(
            server.requests().iter().any(|r| r
                .starts_with(&format!("GET /api/v1/namespaces/{NAMESPACE}/pods?"))
                && r.contains("labelSelector=app.kubernetes.io%2Fname%3Dcoordinator")),
            "no pod listing by label: {:?}",
            server.requests()
        );
    }
    assert!(
        !std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .any(|entry| entry
                .file_name()
                .to_string_lossy()
                .starts_with("coordinator-")
                && entry.path().is_dir()),
        "a replica used the file store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_decrypts_what_another_encrypted() {
    use base64::Engine as _;
    use contrast_testkit::transit::{ClientIdentity, client_config, mesh_ca, path, post};
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let (ports_a, ports_b) = (ports(), ports());
    let start = |own: [u16; 4], peer: [u16; 4]| {
        let peer = format!("127.0.0.1:{}=127.0.0.1:{}", peer[1], peer[3]);
        CoordinatorProcess::start_full(
            &state_dir,
            own.map(|port| format!("127.0.0.1:{port}")),
            Some(format!("127.0.0.1:{}", free_port())),
            &coordinator_workload(),
            &["--recovery-interval", INTERVAL, "--peer", &peer],
            &[],
            true,
        )
    };
    let a = start(ports_a, ports_b);
    let b = start(ports_b, ports_a);
    let vault = Workload::new("vault");
    a.user_client(None)
        .set_manifest(&request(std::slice::from_ref(&vault), None))
        .await
        .unwrap();
    let replicas = vec![a, b];
    converge(&replicas, Duration::from_secs(30)).await;
    let root = dir.path().join("vault");
    let output = run_initializer(&replicas[0], &vault, &root, &["--max-attempts", "3"]);
    assert!(output.status.success());
    let b64 = base64::engine::general_purpose::STANDARD;
    let config = || client_config(&mesh_ca(&root), &ClientIdentity::from_initializer(&root));
    let name = vault.secret_id();
    let body = json!({"plaintext": b64.encode(b"unseal"), "key_version": 3});
    let (status, sealed) = post(
        replicas[0].transit.as_deref().unwrap(),
        config(),
        &path("encrypt", &name),
        body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{sealed}");
    let body = json!({"ciphertext": sealed["data"]["ciphertext"]});
    let (status, opened) = post(
        replicas[1].transit.as_deref().unwrap(),
        config(),
        &path("decrypt", &name),
        body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["data"]["plaintext"], b64.encode(b"unseal"));
}
