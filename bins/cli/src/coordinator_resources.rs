//! The Coordinator's Kubernetes resources (`generate --coordinator`): a StatefulSet of replicas
//! that recover each other, the two Services, and the RBAC objects the Kubernetes store and the
//! peer discovery need. Built as `k8s-openapi` types so the output is well-typed by
//! construction.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    Service, ServiceAccount, ServicePort, ServiceSpec, WeightedPodAffinityTerm,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use contrast_core::api::{
    EVIDENCE_API_PORT, MANIFEST_BODY_LIMIT, MANIFEST_UPDATES_IN_FLIGHT, MESH_API_PORT, OPS_PORT,
    TRANSIT_PORT, USER_API_PORT,
};
use contrast_core::kubernetes::{
    COORDINATOR_NAME, COORDINATOR_POD_ROLE, COORDINATOR_READY_SERVICE, EXPOSE_SERVICE_ANNOTATION,
    NAME_LABEL, POD_ROLE_ANNOTATION,
};

use crate::kube::RUNTIME_CLASS;

/// Port of the probe and metrics server.
pub const PROBE_PORT: i32 = OPS_PORT as i32;

/// Default memory request and limit of the Coordinator (`generate --coordinator-memory`), in
/// MiB. It must hold the idle Coordinator and the manifest updates it processes at once: at most
/// [`MANIFEST_UPDATES_IN_FLIGHT`] requests of at most [`MANIFEST_BODY_LIMIT`] are read at a time
/// (others are refused before their body is read), and decoding one takes up to
/// [`DECODE_FACTOR`] times its size. 32 MiB idle + 2 × 4 MiB × 9 = 104 MiB, which leaves
/// [`CONNECTION_HEADROOM_MIB`] for connections and buffers under 128 MiB.
pub const DEFAULT_COORDINATOR_MEMORY_MIB: usize = 128;

/// The idle Coordinator's peak resident memory, with a margin (measured: 28–29 MiB, debug build
/// on the simulated platform).
const IDLE_MIB: usize = 32;
/// Memory one set-manifest request takes while it is decoded, as a multiple of its size: the
/// received message, the manifest bytes, the JSON tree the Go decoding rules walk and the typed
/// manifest (measured: 35 MiB for a 4 MiB manifest of 25 000 small policies, the worst shape).
const DECODE_FACTOR: usize = 9;
/// What the default leaves for open connections, TLS and HTTP/2 buffers.
const CONNECTION_HEADROOM_MIB: usize = 16;
const _: () = assert!(
    IDLE_MIB
        + MANIFEST_UPDATES_IN_FLIGHT * (MANIFEST_BODY_LIMIT / (1024 * 1024)) * DECODE_FACTOR
        + CONNECTION_HEADROOM_MIB
        <= DEFAULT_COORDINATOR_MEMORY_MIB,
    "the default memory limit must hold the manifest updates the Coordinator reads at once"
);

/// Default container image of the Coordinator.
pub const DEFAULT_COORDINATOR_IMAGE: &str = "localhost/contrast-rs/coordinator:0.1.0";

/// The named container ports, exposed with the same name and number by both Services.
const PORTS: [(&str, i32); 4] = [
    ("userapi", USER_API_PORT as i32),
    ("httpapi", EVIDENCE_API_PORT as i32),
    ("meshapi", MESH_API_PORT as i32),
    ("metrics", PROBE_PORT),
];

/// The transit engine's named port, with [`CoordinatorOptions::transit_engine`].
const TRANSIT: (&str, i32) = ("transit", TRANSIT_PORT as i32);

/// The named ports of a Coordinator built with `options`.
fn ports(options: &CoordinatorOptions) -> Vec<(&'static str, i32)> {
    let mut ports = PORTS.to_vec();
    if options.transit_engine {
        ports.push(TRANSIT);
    }
    ports
}

/// What can be chosen about the Coordinator's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorOptions {
    /// Namespace of every resource (and of the RoleBinding subject).
    pub namespace: String,
    /// StatefulSet replicas.
    pub replicas: i32,
    /// Container image.
    pub image: String,
    /// Memory request and limit, a Kubernetes quantity such as `128Mi`.
    pub memory: String,
    /// Serve the transit engine on its port (the container gets `--transit-addr`, the
    /// Services the port).
    pub transit_engine: bool,
}

/// The Coordinator's resources, in the order they are written.
#[derive(Clone, Debug, PartialEq)]
pub struct CoordinatorResources {
    /// ServiceAccount `coordinator`.
    pub service_account: ServiceAccount,
    /// Role `coordinator`: ConfigMaps for the store, pods for peer discovery.
    pub role: Role,
    /// RoleBinding of the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// Service `coordinator` (also not-ready endpoints: set the first manifest, recover).
    pub service: Service,
    /// Service `coordinator-ready` (ready endpoints only).
    pub ready_service: Service,
    /// StatefulSet `coordinator`.
    pub stateful_set: StatefulSet,
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), COORDINATOR_NAME.to_owned())])
}

fn metadata(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    }
}

fn http_probe(
    path: &str,
    period: i32,
    failure_threshold: Option<i32>,
    delay: Option<i32>,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(PROBE_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold,
        initial_delay_seconds: delay,
        ..Probe::default()
    }
}

fn service(name: &str, namespace: &str, not_ready: bool, ports: &[(&str, i32)]) -> Service {
    let mut meta = metadata(name, namespace);
    if not_ready {
        meta.annotations = Some(BTreeMap::from([(
            EXPOSE_SERVICE_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
    }
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            selector: Some(labels()),
            publish_not_ready_addresses: not_ready.then_some(true),
            ports: Some(
                ports
                    .iter()
                    .map(|(port_name, port)| ServicePort {
                        name: Some((*port_name).to_owned()),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Builds the Coordinator's resources.
#[must_use]
pub fn build(options: &CoordinatorOptions) -> CoordinatorResources {
    let namespace = options.namespace.as_str();
    let memory = Quantity(options.memory.clone());
    let ports = ports(options);
    let mut args = vec!["--store".to_owned(), "kubernetes".to_owned()];
    if options.transit_engine {
        args.extend([
            "--transit-addr".to_owned(),
            format!("0.0.0.0:{TRANSIT_PORT}"),
        ]);
    }
    let container = Container {
        name: COORDINATOR_NAME.to_owned(),
        image: Some(options.image.clone()),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: "HOSTNAME".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| ContainerPort {
                    name: Some((*name).to_owned()),
                    container_port: *port,
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        // Upstream's settings (contrast-protocols.md §4.8).
        startup_probe: Some(http_probe("/probe/startup", 1, Some(60), Some(1))),
        liveness_probe: Some(http_probe("/probe/liveness", 10, Some(3), None)),
        readiness_probe: Some(http_probe("/probe/readiness", 5, None, None)),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_owned(), memory.clone())])),
            requests: Some(BTreeMap::from([("memory".to_owned(), memory)])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    let anti_affinity = PodAntiAffinity {
        preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
            weight: 100,
            pod_affinity_term: PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        POD_ROLE_ANNOTATION.to_owned(),
                        COORDINATOR_POD_ROLE.to_owned(),
                    )])),
                    ..LabelSelector::default()
                }),
                topology_key: "kubernetes.io/hostname".to_owned(),
                ..PodAffinityTerm::default()
            },
        }]),
        ..PodAntiAffinity::default()
    };
    let mut pod_labels = labels();
    // The anti-affinity selects on the pod role, so the pods carry it as a label too.
    pod_labels.insert(
        POD_ROLE_ANNOTATION.to_owned(),
        COORDINATOR_POD_ROLE.to_owned(),
    );
    let stateful_set = StatefulSet {
        metadata: metadata(COORDINATOR_NAME, namespace),
        spec: StatefulSetSpec {
            replicas: Some(options.replicas),
            service_name: Some(COORDINATOR_NAME.to_owned()),
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        POD_ROLE_ANNOTATION.to_owned(),
                        COORDINATOR_POD_ROLE.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    runtime_class_name: Some(RUNTIME_CLASS.to_owned()),
                    service_account_name: Some(COORDINATOR_NAME.to_owned()),
                    containers: vec![container],
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(anti_affinity),
                        ..Affinity::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    };
    let rule = |resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.to_owned()]),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    };
    CoordinatorResources {
        service_account: ServiceAccount {
            metadata: metadata(COORDINATOR_NAME, namespace),
            ..ServiceAccount::default()
        },
        role: Role {
            metadata: metadata(COORDINATOR_NAME, namespace),
            rules: Some(vec![
                rule("configmaps", &["get", "list", "create", "update", "watch"]),
                rule("pods", &["get", "list"]),
            ]),
        },
        role_binding: RoleBinding {
            metadata: metadata(COORDINATOR_NAME, namespace),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_owned()),
                kind: "Role".to_owned(),
                name: COORDINATOR_NAME.to_owned(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: COORDINATOR_NAME.to_owned(),
                namespace: Some(namespace.to_owned()),
                ..Subject::default()
            }]),
        },
        service: service(COORDINATOR_NAME, namespace, true, &ports),
        ready_service: service(COORDINATOR_READY_SERVICE, namespace, false, &ports),
        stateful_set,
    }
}

impl CoordinatorResources {
    /// The resources as one multi-document YAML stream, each document opened by `---`.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        let documents = [
            serde_norway::to_string(&self.service_account),
            serde_norway::to_string(&self.role),
            serde_norway::to_string(&self.role_binding),
            serde_norway::to_string(&self.service),
            serde_norway::to_string(&self.ready_service),
            serde_norway::to_string(&self.stateful_set),
        ];
        let mut out = String::new();
        for document in documents {
            out.push_str("---\n");
            out.push_str(&document.context("could not serialise a Coordinator resource")?);
        }
        Ok(out)
    }
}
