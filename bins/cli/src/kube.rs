//! Kubernetes YAML: splitting multi-document files without touching the bytes of documents we
//! leave alone, finding pod templates that run confidentially, and injecting what Contrast needs.
//!
//! Documents are kept as untyped YAML values so that fields this tool does not know survive a
//! rewrite unchanged; only documents that are modified are serialised again.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow, bail};
use contrast_core::kubernetes::{
    COORDINATOR_HOST_ENV, COORDINATOR_IDENTITY_ENV, COORDINATOR_POD_ROLE,
    COORDINATOR_READY_SERVICE, IMAGE_STORE_SIZE_ANNOTATION, INITIALIZER_DONE_FILE,
    POD_ROLE_ANNOTATION, SECRETS_MOUNT_PATH, SECURE_PV_ANNOTATION, SECURE_PV_DEVICE_PATH,
    SECURE_PV_MOUNT_POINT, SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION,
    SERVICE_MESH_EGRESS_ANNOTATION, SERVICE_MESH_INGRESS_ANNOTATION, SERVICE_MESH_READY_FILE,
    SKIP_INITIALIZER_ANNOTATION, WORKLOAD_SECRET_ID_ANNOTATION, cryptsetup_args,
};
use contrast_mesh::config::SERVICE_MESH_DISABLED_ENV;
use contrast_mesh::config::{self as mesh_config, ConfigError};
use serde_norway::{Mapping, Value};

/// The runtime class of confidential pods.
pub const RUNTIME_CLASS: &str = "contrast-cc";
/// Name of the injected init container.
pub const INITIALIZER_CONTAINER: &str = "contrast-initializer";
/// Name of the shared volume the initializer writes its files to.
pub const SECRETS_VOLUME: &str = "contrast-secrets";
/// Memory request and limit of the initializer.
pub const INITIALIZER_MEMORY: &str = "50Mi";
/// Name of the injected secure-pv sidecar (the initializer running `cryptsetup`).
pub const SECURE_PV_CONTAINER: &str = "contrast-secure-pv";
/// Memory request and limit of the secure-pv sidecar: more than the initializer's, as
/// cryptsetup's key derivation and mkfs run in it.
pub const SECURE_PV_MEMORY: &str = "100Mi";
/// How often the secure-pv sidecar's startup probe may fail (once a second) before the kubelet
/// restarts it: formatting and mkfs of a large volume take a while.
pub const SECURE_PV_STARTUP_FAILURE_THRESHOLD: u32 = 600;
/// Name of the injected service-mesh sidecar (upstream's name for its Envoy sidecar).
pub const SERVICE_MESH_CONTAINER: &str = "contrast-service-mesh";
/// Memory request and limit of the service-mesh sidecar: its proxy buffers each connection.
pub const SERVICE_MESH_MEMORY: &str = "100Mi";
/// How often the service-mesh sidecar's startup probe may fail (once a second) before the
/// kubelet restarts it: it waits up to five minutes (its `--cert-timeout`) for the
/// initializer's certificates.
pub const SERVICE_MESH_STARTUP_FAILURE_THRESHOLD: u32 = 300;
/// Name of the container port of the service-mesh sidecar's admin interface (a port name has
/// at most 15 characters).
pub const SERVICE_MESH_ADMIN_PORT_NAME: &str = "contrast-admin";
const _: () = assert!(SERVICE_MESH_ADMIN_PORT_NAME.len() <= 15);

/// One document of a multi-document YAML file, as bytes: the separator line that opened it
/// (`---`, empty for a first document without one) and the text up to the next separator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawDocument {
    /// The `---` line including its line break, or empty.
    pub separator: String,
    /// Everything after the separator line up to the next one.
    pub body: String,
}

/// Splits a YAML stream at `---` lines. Joining the parts gives back the exact input.
#[must_use]
pub fn split_documents(text: &str) -> Vec<RawDocument> {
    let mut documents = Vec::new();
    let mut separator = String::new();
    let mut body = String::new();
    for line in text.split_inclusive('\n') {
        if is_document_separator(line) {
            if !separator.is_empty() || !body.is_empty() {
                documents.push(RawDocument {
                    separator: std::mem::take(&mut separator),
                    body: std::mem::take(&mut body),
                });
            }
            line.clone_into(&mut separator);
        } else {
            body.push_str(line);
        }
    }
    documents.push(RawDocument { separator, body });
    documents
}

/// Joins documents back into one YAML stream.
#[must_use]
pub fn join_documents(documents: &[RawDocument]) -> String {
    documents
        .iter()
        .flat_map(|d| [d.separator.as_str(), d.body.as_str()])
        .collect()
}

fn is_document_separator(line: &str) -> bool {
    let line = line.trim_end_matches(['\n', '\r']);
    line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
}

/// Parses one raw document (an empty or comment-only document is [`Value::Null`]).
pub fn parse_document(document: &RawDocument) -> anyhow::Result<Value> {
    let text = format!("{}{}", document.separator, document.body);
    Ok(serde_norway::from_str(&text)?)
}

/// Serialises a modified document, keeping its separator line and the comment lines that
/// open it (comments inside the document are lost).
pub fn render_document(value: &Value, original: &RawDocument) -> anyhow::Result<RawDocument> {
    let mut body: String = original
        .body
        .split_inclusive('\n')
        .take_while(|line| {
            let line = line.trim_start();
            line.is_empty() || line.starts_with('#') || line == "\n" || line == "\r\n"
        })
        .collect();
    body.push_str(&serde_norway::to_string(value).context("could not serialise a YAML document")?);
    Ok(RawDocument {
        separator: if original.separator.is_empty() {
            String::new()
        } else {
            "---\n".to_owned()
        },
        body,
    })
}

/// A resource whose pod template runs with runtime class [`RUNTIME_CLASS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfidentialWorkload {
    /// `apiVersion` of the resource, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind` of the resource, e.g. `Deployment`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// The pod template's [`POD_ROLE_ANNOTATION`].
    pub pod_role: Option<String>,
    /// The pod template's [`WORKLOAD_SECRET_ID_ANNOTATION`].
    pub workload_secret_id_annotation: Option<String>,
}

impl ConfidentialWorkload {
    /// `<namespace>/<kind lowercase>/<name>`: how this tool names a workload in messages.
    #[must_use]
    pub fn qualified_name(&self) -> String {
        format!(
            "{}/{}/{}",
            self.namespace,
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }

    /// The workload secret ID: the annotation if set, else upstream's default
    /// `<group or "core">/<version>/<Kind>/<namespace>/<name>`.
    #[must_use]
    pub fn workload_secret_id(&self) -> String {
        if let Some(id) = &self.workload_secret_id_annotation {
            return id.clone();
        }
        let (group, version) = match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("core", self.api_version.as_str()),
        };
        format!(
            "{group}/{version}/{}/{}/{}",
            self.kind, self.namespace, self.name
        )
    }

    /// Whether the pod is the Coordinator.
    #[must_use]
    pub fn is_coordinator(&self) -> bool {
        self.pod_role.as_deref() == Some(COORDINATOR_POD_ROLE)
    }
}

/// The path from a resource to its pod template, by kind; `None` for kinds without one.
fn pod_template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(&["spec", "template"])
        }
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

fn get_path<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn get_str<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    get_path(value, path).and_then(Value::as_str)
}

/// The pod template of a resource (the resource itself for a Pod).
pub fn pod_template_mut(resource: &mut Value) -> Option<&mut Value> {
    let kind = get_str(resource, &["kind"])?.to_owned();
    let path = pod_template_path(&kind)?;
    path.iter()
        .try_fold(resource, |v, key| v.get_mut(*key))
        .filter(|v| v.is_mapping())
}

/// Describes `resource` if it has a pod template with runtime class [`RUNTIME_CLASS`].
///
/// # Errors
///
/// If such a resource has no `metadata.name` (there is nothing to name it by).
pub fn confidential_workload(resource: &Value) -> anyhow::Result<Option<ConfidentialWorkload>> {
    let Some(kind) = get_str(resource, &["kind"]) else {
        return Ok(None);
    };
    let Some(path) = pod_template_path(kind) else {
        return Ok(None);
    };
    let Some(template) = get_path(resource, path) else {
        return Ok(None);
    };
    if get_str(template, &["spec", "runtimeClassName"]) != Some(RUNTIME_CLASS) {
        return Ok(None);
    }
    let name = get_str(resource, &["metadata", "name"])
        .ok_or_else(|| {
            anyhow!("a {kind} with runtimeClassName {RUNTIME_CLASS} has no metadata.name; name it")
        })?
        .to_owned();
    let annotation = |key: &str| get_str(template, &["metadata", "annotations", key]);
    Ok(Some(ConfidentialWorkload {
        api_version: get_str(resource, &["apiVersion"]).unwrap_or("").to_owned(),
        kind: kind.to_owned(),
        name,
        namespace: get_str(resource, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_owned(),
        pod_role: annotation(POD_ROLE_ANNOTATION).map(str::to_owned),
        workload_secret_id_annotation: annotation(WORKLOAD_SECRET_ID_ANNOTATION).map(str::to_owned),
    }))
}

/// Upstream annotations whose feature contrast-rs does not have yet, with that feature:
/// `contrast generate` refuses a pod that carries one (see [`decide_annotations`]), because
/// ignoring it would deploy the pod without what the annotation asks for.
pub const UNSUPPORTED_ANNOTATIONS: [(&str, &str); 1] =
    [(IMAGE_STORE_SIZE_ANNOTATION, "the secure image store")];

/// The service-mesh annotations, which [`decide_annotations`] reads into [`ServiceMesh`].
pub const SERVICE_MESH_ANNOTATIONS: [&str; 3] = [
    SERVICE_MESH_INGRESS_ANNOTATION,
    SERVICE_MESH_EGRESS_ANNOTATION,
    SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION,
];

/// What a confidential pod's Contrast annotations ask of `contrast generate`, once those it
/// cannot honour were refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodAnnotations {
    /// [`SKIP_INITIALIZER_ANNOTATION`] is `"true"`: no initializer for this pod (it still gets
    /// its initdata and its manifest entry).
    pub skip_initializer: bool,
    /// [`SECURE_PV_ANNOTATION`]'s volumes: inject the secure-pv sidecar.
    pub secure_pv: Option<SecurePv>,
    /// The service-mesh annotations, if any is present: inject the service-mesh sidecar.
    pub service_mesh: Option<ServiceMesh>,
}

/// The service-mesh annotations of a pod, checked with the sidecar's own parser
/// ([`contrast_mesh::config`]). The values are kept as written: the sidecar gets them verbatim
/// in its environment and parses them the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceMesh {
    /// [`SERVICE_MESH_INGRESS_ANNOTATION`], for [`mesh_config::INGRESS_ENV`]; absent: the
    /// sidecar's default, every inbound TCP port requires mutual TLS.
    pub ingress: Option<String>,
    /// [`SERVICE_MESH_EGRESS_ANNOTATION`] (never empty), for [`mesh_config::EGRESS_ENV`].
    pub egress: Option<String>,
    /// [`SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION`] as written, for
    /// [`mesh_config::ADMIN_PORT_ENV`], and the port it names.
    pub admin_port: Option<(String, u16)>,
}

impl ServiceMesh {
    /// The annotations present, for messages: `the annotation a`, `the annotations a and b`,
    /// or `the annotations a, b and c`.
    #[must_use]
    pub fn annotations(&self) -> String {
        let present: Vec<&str> = SERVICE_MESH_ANNOTATIONS
            .into_iter()
            .zip([
                self.ingress.is_some(),
                self.egress.is_some(),
                self.admin_port.is_some(),
            ])
            .filter_map(|(annotation, present)| present.then_some(annotation))
            .collect();
        match present.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                format!("the annotations {} and {last}", rest.join(", "))
            }
            _ => format!("the annotation {}", present.concat()),
        }
    }
}

/// The expected syntax of [`SERVICE_MESH_INGRESS_ANNOTATION`]'s entries, for messages.
const SERVICE_MESH_INGRESS_SYNTAX: &str = "\"<name>#<port>#<disableTLS>\" entries separated by \
     \"##\", e.g. \"web#8080#false##metrics#9090#true\"; empty: every port requires mutual TLS; \
     \"DISABLED\": no ingress redirection";

/// The expected syntax of [`SERVICE_MESH_EGRESS_ANNOTATION`]'s entries, for messages.
const SERVICE_MESH_EGRESS_SYNTAX: &str = "\"<name>#<listen IPv4>:<port>#<remote host>:<port>\" \
     entries separated by \"##\", the listen address in 127.0.0.0/8, e.g. \
     \"db#127.137.0.1:5432#db:5432\"";

/// Decides the service-mesh annotations (`string` gives an annotation's string value): `None`
/// when the pod has none of them. Each value is parsed with [`contrast_mesh::config`]; an
/// error names `workload`, the annotation, the entry and the problem.
fn decide_service_mesh<'a>(
    workload: &str,
    string: impl Fn(&str) -> anyhow::Result<Option<&'a str>>,
) -> anyhow::Result<Option<ServiceMesh>> {
    let ingress = string(SERVICE_MESH_INGRESS_ANNOTATION)?;
    let egress = string(SERVICE_MESH_EGRESS_ANNOTATION)?;
    let admin_port = string(SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION)?;
    if ingress.is_none() && egress.is_none() && admin_port.is_none() {
        return Ok(None);
    }
    let entry_error = |error: ConfigError, syntax: &str| {
        anyhow!(
            "{workload}: {error}; fix the entry (the annotation takes {syntax}) or remove the \
             annotation"
        )
    };
    if let Some(ingress) = ingress {
        mesh_config::parse_ingress(SERVICE_MESH_INGRESS_ANNOTATION, ingress)
            .map_err(|error| entry_error(error, SERVICE_MESH_INGRESS_SYNTAX))?;
    }
    // Upstream refuses it too: an egress annotation that declares nothing is a mistake.
    if egress == Some("") {
        bail!(
            "{workload}: the annotation {SERVICE_MESH_EGRESS_ANNOTATION} is empty; it must list \
             at least one entry ({SERVICE_MESH_EGRESS_SYNTAX}) or be removed"
        );
    }
    let parsed_egress = egress
        .map(|egress| mesh_config::parse_egress(SERVICE_MESH_EGRESS_ANNOTATION, egress))
        .transpose()
        .map_err(|error| entry_error(error, SERVICE_MESH_EGRESS_SYNTAX))?
        .unwrap_or_default();
    let admin_port = admin_port
        .map(|value| {
            let key = SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION;
            mesh_config::parse_admin_port(value, &parsed_egress)
                .map(|port| (value.to_owned(), port))
                .map_err(|error| match error {
                    ConfigError::AdminPort { found } => anyhow!(
                        "{workload}: the annotation {key} is {found:?}, but it must be a port \
                         number from 1 to 65535; fix it or remove the annotation"
                    ),
                    ConfigError::AdminPortConflict { port, reason } => anyhow!(
                        "{workload}: the annotation {key} is {value:?}, but port {port} is \
                         taken: {reason}; choose another port for the admin interface"
                    ),
                    other => anyhow!("{workload}: the annotation {key}: {other}"),
                })
        })
        .transpose()?;
    Ok(Some(ServiceMesh {
        ingress: ingress.map(str::to_owned),
        egress: egress.map(str::to_owned),
        admin_port,
    }))
}

/// The expected syntax of [`SECURE_PV_ANNOTATION`]'s value, for messages.
const SECURE_PV_SYNTAX: &str = "\"<device volume>:<mount volume>\" (a block-mode volume claim \
     and an emptyDir volume of the pod, e.g. \"state:share\")";

/// The two volumes [`SECURE_PV_ANNOTATION`] names (`<device volume>:<mount volume>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurePv {
    /// The block-mode volume claim the sidecar gets as the raw device [`SECURE_PV_DEVICE_PATH`].
    pub device_volume: String,
    /// The `emptyDir` volume the sidecar mounts the opened volume on, shared with the pod's
    /// containers by mount propagation.
    pub mount_volume: String,
}

impl SecurePv {
    /// Parses `<device volume>:<mount volume>`: exactly one `:`, both parts valid volume names
    /// (DNS-1123 labels) and different. The error says what is wrong with `value`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let parts: Vec<&str> = value.split(':').collect();
        let [device_volume, mount_volume] = parts.as_slice() else {
            return Err(format!(
                "it has {} ':' where exactly one must separate the two volumes",
                parts.len() - 1
            ));
        };
        for (what, name) in [("device", device_volume), ("mount", mount_volume)] {
            if name.is_empty() {
                return Err(format!("the {what} volume is empty"));
            }
            if !is_dns_label(name) {
                return Err(format!(
                    "the {what} volume {name:?} is not a valid volume name (lowercase letters, \
                     digits and '-', starting and ending with a letter or digit, at most 63 \
                     characters)"
                ));
            }
        }
        if device_volume == mount_volume {
            return Err(format!(
                "it names the volume {device_volume:?} twice, but the device and the mount \
                 volume must be two volumes"
            ));
        }
        Ok(Self {
            device_volume: (*device_volume).to_owned(),
            mount_volume: (*mount_volume).to_owned(),
        })
    }
}

/// Whether `name` is a DNS-1123 label, what Kubernetes requires of volume names.
fn is_dns_label(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.chars().all(|c| alphanumeric(c) || c == '-')
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
}

/// The one decision about upstream's workload annotations: which are honoured (and how their
/// values are read) and which are refused. `lookup` gives an annotation's value, if the pod has
/// it; `workload` names the pod in messages.
///
/// - [`SKIP_INITIALIZER_ANNOTATION`]: `"true"` or `"false"`; anything else is refused (upstream
///   reads anything but `"true"` as `"false"`, which turns a typo into an injection).
/// - [`SECURE_PV_ANNOTATION`]: `<device volume>:<mount volume>` ([`SecurePv::parse`]); whether
///   the volumes fit is checked on the resource ([`check_secure_pv`]).
/// - [`SERVICE_MESH_ANNOTATIONS`]: any of them asks for the service-mesh sidecar
///   ([`ServiceMesh`]); each value is parsed by the sidecar's parser ([`contrast_mesh::config`]),
///   an empty egress is refused (as upstream does), the admin port is checked against the
///   ingress. Whether the pod gets the initializer the sidecar needs is checked by the caller.
/// - [`UNSUPPORTED_ANNOTATIONS`]: refused with any value, naming the feature that is not
///   supported yet; except [`IMAGE_STORE_SIZE_ANNOTATION`] `"0"`, which disables the image store
///   upstream and so asks for what contrast-rs does anyway.
/// - Every annotation value must be a string (Kubernetes refuses other types).
pub fn decide_annotations<'a>(
    workload: &str,
    lookup: impl Fn(&str) -> Option<&'a Value>,
) -> anyhow::Result<PodAnnotations> {
    let string = |key: &str| -> anyhow::Result<Option<&'a str>> {
        match lookup(key) {
            None => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.as_str())),
            Some(other) => bail!(
                "{workload}: the annotation {key} is {}, but annotation values must be strings; \
                 quote it (e.g. \"true\")",
                yaml_type(other)
            ),
        }
    };
    for (key, feature) in UNSUPPORTED_ANNOTATIONS {
        let Some(value) = string(key)? else {
            continue;
        };
        if key == IMAGE_STORE_SIZE_ANNOTATION && value == "0" {
            continue;
        }
        bail!(
            "{workload} has the annotation {key}: {value:?}, but contrast-rs does not support \
             {feature} yet; remove the annotation (the pod would run without it) or deploy this \
             workload with upstream Contrast"
        );
    }
    let skip_initializer = match string(SKIP_INITIALIZER_ANNOTATION)? {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => bail!(
            "{workload}: the annotation {SKIP_INITIALIZER_ANNOTATION} is {other:?}; it must be \
             \"true\" (inject no initializer) or \"false\""
        ),
    };
    let secure_pv = string(SECURE_PV_ANNOTATION)?
        .map(|value| {
            SecurePv::parse(value).map_err(|reason| {
                anyhow!(
                    "{workload}: the annotation {SECURE_PV_ANNOTATION} is {value:?}, but \
                     {reason}; it must be {SECURE_PV_SYNTAX}"
                )
            })
        })
        .transpose()?;
    let service_mesh = decide_service_mesh(workload, string)?;
    Ok(PodAnnotations {
        skip_initializer,
        secure_pv,
        service_mesh,
    })
}

fn yaml_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The Contrast annotations of a confidential resource, decided by [`decide_annotations`]. An
/// annotation is read from the pod template's metadata (where upstream's documentation puts
/// it) or else from the resource's own metadata (where some upstream versions read it), so
/// that neither placement is silently ignored.
pub fn pod_annotations(
    resource: &Value,
    workload: &ConfidentialWorkload,
) -> anyhow::Result<PodAnnotations> {
    let template = pod_template_path(&workload.kind).and_then(|path| get_path(resource, path));
    let lookup = |key: &str| {
        template
            .and_then(|template| get_path(template, &["metadata", "annotations", key]))
            .or_else(|| get_path(resource, &["metadata", "annotations", key]))
    };
    decide_annotations(&workload.qualified_name(), lookup)
}

/// Removes the injected initializer container (no-op when absent): for a pod that an earlier
/// run injected and that is now annotated to skip it. The shared emptyDir volume stays, as the
/// pod's containers may mount it.
pub fn remove_initializer(template: &mut Value) {
    remove_init_container(template, INITIALIZER_CONTAINER);
}

/// Removes the injected secure-pv sidecar (no-op when absent): for a pod that an earlier run
/// injected and whose [`SECURE_PV_ANNOTATION`] is gone now. The mount propagation set on the
/// containers' mounts stays: it is harmless, and it may have been the user's.
pub fn remove_secure_pv(template: &mut Value) {
    remove_init_container(template, SECURE_PV_CONTAINER);
}

/// Removes the injected service-mesh sidecar (no-op when absent): for a pod that an earlier run
/// injected and whose service-mesh annotations are all gone now.
pub fn remove_service_mesh(template: &mut Value) {
    remove_init_container(template, SERVICE_MESH_CONTAINER);
}

fn remove_init_container(template: &mut Value, name: &str) {
    if let Some(Value::Sequence(containers)) = template
        .get_mut("spec")
        .and_then(|spec| spec.get_mut("initContainers"))
    {
        containers.retain(|container| get_str(container, &["name"]) != Some(name));
    }
}

/// Whether a runtimeClassName that is not [`RUNTIME_CLASS`] looks meant as it: the same but for
/// case, within two edits of it, or starting with `contrast` (upstream's platform runtime
/// classes, `contrast-cc-<platform>-<hash>`, which upstream's generate accepts by prefix and
/// contrast-rs does not).
#[must_use]
pub fn is_near_miss_runtime_class(found: &str) -> bool {
    if found == RUNTIME_CLASS {
        return false;
    }
    let lower = found.to_ascii_lowercase();
    lower.starts_with("contrast")
        || contrast_core::edit_distance::levenshtein(&lower, RUNTIME_CLASS) <= 2
}

/// A resource whose pod template's runtimeClassName is a near miss of [`RUNTIME_CLASS`] (see
/// [`is_near_miss_runtime_class`]): `generate` leaves it alone, which is likely not what was
/// meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    /// `<namespace>/<kind lowercase>/<name>`, as [`ConfidentialWorkload::qualified_name`].
    pub resource: String,
    /// The runtimeClassName found.
    pub runtime_class: String,
}

/// The near miss of `resource`, if its pod template has one.
#[must_use]
pub fn near_miss_runtime_class(resource: &Value) -> Option<NearMiss> {
    let kind = get_str(resource, &["kind"])?;
    let template = get_path(resource, pod_template_path(kind)?)?;
    let found = get_str(template, &["spec", "runtimeClassName"])?;
    is_near_miss_runtime_class(found).then(|| NearMiss {
        resource: format!(
            "{}/{}/{}",
            get_str(resource, &["metadata", "namespace"]).unwrap_or("default"),
            kind.to_ascii_lowercase(),
            get_str(resource, &["metadata", "name"]).unwrap_or("<unnamed>")
        ),
        runtime_class: found.to_owned(),
    })
}

/// The mapping under `key` of a mapping value, created when absent or `null`.
fn child_mapping<'a>(parent: &'a mut Value, key: &str) -> anyhow::Result<&'a mut Mapping> {
    let Value::Mapping(map) = parent else {
        bail!("expected a mapping that holds `{key}`");
    };
    mapping_entry(map, key)
}

/// The mapping under `key` of `map`, created when absent or `null`.
fn mapping_entry<'a>(map: &'a mut Mapping, key: &str) -> anyhow::Result<&'a mut Mapping> {
    let entry = map
        .entry(Value::String(key.to_owned()))
        .or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Mapping(Mapping::new());
    }
    match entry {
        Value::Mapping(child) => Ok(child),
        _ => bail!("`{key}` is not a mapping"),
    }
}

/// The sequence under `key` of `map`, created when absent or `null`.
fn child_sequence<'a>(map: &'a mut Mapping, key: &str) -> anyhow::Result<&'a mut Vec<Value>> {
    let entry = map
        .entry(Value::String(key.to_owned()))
        .or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Sequence(Vec::new());
    }
    match entry {
        Value::Sequence(items) => Ok(items),
        _ => bail!("`{key}` is not a list"),
    }
}

/// Sets a pod template annotation.
pub fn set_annotation(template: &mut Value, key: &str, value: &str) -> anyhow::Result<()> {
    let metadata = child_mapping(template, "metadata").context("the pod template")?;
    let annotations =
        mapping_entry(metadata, "annotations").context("metadata of the pod template")?;
    annotations.insert(
        Value::String(key.to_owned()),
        Value::String(value.to_owned()),
    );
    Ok(())
}

/// Removes a pod template annotation (no-op when absent).
pub fn remove_annotation(template: &mut Value, key: &str) {
    if let Some(Value::Mapping(annotations)) = template
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove(key);
    }
}

/// The initializer init container, given the Coordinator's identity (its JSON document).
fn initializer_container(
    image: &str,
    coordinator_identity: &str,
    service_mesh: bool,
) -> anyhow::Result<Value> {
    let mut env = vec![
        serde_json::json!({ "name": COORDINATOR_HOST_ENV, "value": COORDINATOR_READY_SERVICE }),
        serde_json::json!({ "name": COORDINATOR_IDENTITY_ENV, "value": coordinator_identity }),
    ];
    // Without the sidecar, the initializer is what removes the pod VM's default-deny rule.
    if !service_mesh {
        env.push(serde_json::json!({ "name": SERVICE_MESH_DISABLED_ENV, "value": "true" }));
    }
    let container = serde_json::json!({
        "name": INITIALIZER_CONTAINER,
        "image": image,
        "env": env,
        "resources": {
            "limits": { "memory": INITIALIZER_MEMORY },
            "requests": { "memory": INITIALIZER_MEMORY },
        },
        "volumeMounts": [{ "name": SECRETS_VOLUME, "mountPath": SECRETS_MOUNT_PATH }],
    });
    Ok(serde_norway::to_value(container)?)
}

/// The value of the environment variable `name` of the injected initializer container, if the
/// pod template has that container and it has that variable.
#[must_use]
pub fn initializer_env(template: &Value, name: &str) -> Option<String> {
    get_path(template, &["spec", "initContainers"])?
        .as_sequence()?
        .iter()
        .find(|container| get_str(container, &["name"]) == Some(INITIALIZER_CONTAINER))?
        .get("env")?
        .as_sequence()?
        .iter()
        .find(|variable| get_str(variable, &["name"]) == Some(name))
        .and_then(|variable| get_str(variable, &["value"]))
        .map(str::to_owned)
}

fn secrets_volume() -> anyhow::Result<Value> {
    Ok(serde_norway::to_value(
        serde_json::json!({ "name": SECRETS_VOLUME, "emptyDir": {} }),
    )?)
}

/// Replaces the item named `name` in place, or inserts `item` (at the front or the back).
fn upsert_named(items: &mut Vec<Value>, name: &str, item: Value, at_front: bool) {
    match items
        .iter_mut()
        .find(|existing| existing.get("name").and_then(Value::as_str) == Some(name))
    {
        Some(existing) => *existing = item,
        None if at_front => items.insert(0, item),
        None => items.push(item),
    }
}

/// Injects the initializer as the first init container, given the Coordinator's identity (its
/// JSON document) in its environment (and, for a pod without the service-mesh sidecar,
/// `CONTRAST_SERVICE_MESH_DISABLED=true`: the initializer then removes the pod VM's
/// default-deny rule), and the shared emptyDir volume. Both replace an earlier
/// injection with the same name (the whole container, so its environment is replaced, never
/// extended): injecting twice changes nothing.
pub fn inject_initializer(
    template: &mut Value,
    image: &str,
    coordinator_identity: &str,
    service_mesh: bool,
) -> anyhow::Result<()> {
    let container = initializer_container(image, coordinator_identity, service_mesh)?;
    let volume = secrets_volume()?;
    let spec = child_mapping(template, "spec").context("the pod template")?;
    let init_containers =
        child_sequence(spec, "initContainers").context("spec.initContainers of the pod")?;
    upsert_named(init_containers, INITIALIZER_CONTAINER, container, true);
    let volumes = child_sequence(spec, "volumes").context("spec.volumes of the pod")?;
    upsert_named(volumes, SECRETS_VOLUME, volume, false);
    Ok(())
}

/// The PersistentVolumeClaims among `generate`'s input files: the `spec.volumeMode` of each
/// (`None` when absent), by namespace and name.
pub type InputClaims = BTreeMap<(String, String), Option<Value>>;

/// Adds `resource` to `claims` if it is a named PersistentVolumeClaim.
pub fn collect_claim(resource: &Value, claims: &mut InputClaims) {
    if get_str(resource, &["kind"]) != Some("PersistentVolumeClaim") {
        return;
    }
    let Some(name) = get_str(resource, &["metadata", "name"]) else {
        return;
    };
    let namespace = get_str(resource, &["metadata", "namespace"]).unwrap_or("default");
    claims.insert(
        (namespace.to_owned(), name.to_owned()),
        get_path(resource, &["spec", "volumeMode"]).cloned(),
    );
}

/// `None` if a claim's `volumeMode` is `Block`, else what it is, for messages.
fn not_block(volume_mode: Option<&Value>) -> Option<String> {
    match volume_mode {
        Some(Value::String(mode)) if mode == "Block" => None,
        None | Some(Value::Null) => Some("no volumeMode (Filesystem, the default)".to_owned()),
        Some(Value::String(mode)) => Some(format!("volumeMode {mode}")),
        Some(other) => Some(format!("a volumeMode that is {}", yaml_type(other))),
    }
}

/// The kind of a pod volume: its source's key (`emptyDir`, `hostPath`, ...). A volume without
/// a source is an `emptyDir`, as Kubernetes defaults it.
fn volume_kind(volume: &Value) -> &str {
    volume
        .as_mapping()
        .and_then(|map| {
            map.keys()
                .filter_map(Value::as_str)
                .find(|key| *key != "name")
        })
        .unwrap_or("emptyDir")
}

fn sequence<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    get_path(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// What [`check_secure_pv`] found: what [`inject_secure_pv`] changes, and what to warn about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurePvPlan {
    secure_pv: SecurePv,
    /// `(container, volumeMount)` indices of the containers' mounts of the mount volume that
    /// have no `mountPropagation`: they get `HostToContainer`.
    propagation_to_set: Vec<(usize, usize)>,
    /// What generate could not check or what looks unintended, naming the workload.
    pub warnings: Vec<String>,
}

/// Checks that the volumes of a confidential resource's [`SECURE_PV_ANNOTATION`] fit, before
/// anything is changed:
///
/// - the device volume is, looked up in this order, a StatefulSet's volume claim template, an
///   ephemeral volume or a `persistentVolumeClaim` volume, with `volumeMode: Block`. A claim
///   that is not in `claims` (the input files) cannot be checked: a warning says so;
/// - the mount volume is an `emptyDir` volume of the pod (not the initializer's own);
/// - no container mounts the mount volume with `mountPropagation: None` (it would never see the
///   encrypted volume); a warning if no container mounts it at all.
pub fn check_secure_pv(
    resource: &Value,
    workload: &ConfidentialWorkload,
    secure_pv: &SecurePv,
    claims: &InputClaims,
) -> anyhow::Result<SecurePvPlan> {
    let name = workload.qualified_name();
    let template = pod_template_path(&workload.kind)
        .and_then(|path| get_path(resource, path))
        .ok_or_else(|| anyhow!("{name}: the pod template is not a mapping"))?;
    let volumes = sequence(template, &["spec", "volumes"]);
    let volume = |wanted: &str| {
        volumes
            .iter()
            .find(|volume| get_str(volume, &["name"]) == Some(wanted))
    };
    // A claim template replaces a pod volume of the same name (the StatefulSet controller's
    // rule), so it is looked up first.
    let claim_templates = if workload.kind == "StatefulSet" {
        sequence(resource, &["spec", "volumeClaimTemplates"])
    } else {
        &[]
    };
    let claim_template = |wanted: &str| {
        claim_templates
            .iter()
            .find(|claim| get_str(claim, &["metadata", "name"]) == Some(wanted))
    };
    let existing = {
        let names = |items: &[Value], path: &[&str]| {
            items
                .iter()
                .filter_map(|item| get_str(item, path))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !claim_templates.is_empty() {
            parts.push(format!(
                "volume claim templates: {}",
                names(claim_templates, &["metadata", "name"])
            ));
        }
        if !volumes.is_empty() {
            parts.push(format!("volumes: {}", names(volumes, &["name"])));
        }
        if parts.is_empty() {
            "it has no volumes".to_owned()
        } else {
            format!("its {}", parts.join("; its "))
        }
    };
    let mut warnings = Vec::new();

    let device = secure_pv.device_volume.as_str();
    let context =
        format!("{name}: the annotation {SECURE_PV_ANNOTATION} names the device volume {device:?}");
    let block_hint = "secure-pv needs a raw block device";
    if let Some(claim) = claim_template(device) {
        if let Some(found) = not_block(get_path(claim, &["spec", "volumeMode"])) {
            bail!(
                "{context}, a volume claim template of the StatefulSet, but it has {found}; \
                 {block_hint}: set its spec.volumeMode to Block"
            );
        }
    } else if let Some(volume) = volume(device) {
        if let Some(ephemeral) = volume.get("ephemeral") {
            let mode = get_path(ephemeral, &["volumeClaimTemplate", "spec", "volumeMode"]);
            if let Some(found) = not_block(mode) {
                bail!(
                    "{context}, an ephemeral volume, but its volume claim template has {found}; \
                     {block_hint}: set ephemeral.volumeClaimTemplate.spec.volumeMode to Block"
                );
            }
        } else if let Some(claim_name) = get_str(volume, &["persistentVolumeClaim", "claimName"]) {
            let namespace = workload.namespace.as_str();
            match claims.get(&(namespace.to_owned(), claim_name.to_owned())) {
                Some(mode) => {
                    if let Some(found) = not_block(mode.as_ref()) {
                        bail!(
                            "{context}, the PersistentVolumeClaim {namespace}/{claim_name}, but \
                             that claim (in the input files) has {found}; {block_hint}: set \
                             its spec.volumeMode to Block (a claim's volumeMode cannot change: \
                             recreate it)"
                        );
                    }
                }
                None => warnings.push(format!(
                    "{name}: the secure-pv device volume {device:?} is the \
                     PersistentVolumeClaim {namespace}/{claim_name}, which is not among the \
                     input files, so generate could not check its volumeMode; it must be Block \
                     (a raw block device), else the pod does not start; pass the claim's file \
                     to generate to have it checked"
                )),
            }
        } else {
            bail!(
                "{context}, but that is a {} volume; {block_hint}: a volume claim template of \
                 a StatefulSet, an ephemeral volume or a persistentVolumeClaim volume, with \
                 volumeMode Block",
                volume_kind(volume)
            );
        }
    } else {
        bail!(
            "{context}, but the pod has no such volume ({existing}); name one of them, or add \
             a volume claim with volumeMode Block"
        );
    }

    let mount = secure_pv.mount_volume.as_str();
    let context =
        format!("{name}: the annotation {SECURE_PV_ANNOTATION} names the mount volume {mount:?}");
    let emptydir_hint = format!(
        "it must be an emptyDir volume of the pod (`- name: {mount}` with `emptyDir: {{}}` under \
         spec.volumes), which the sidecar mounts the encrypted volume on"
    );
    if mount == SECRETS_VOLUME {
        bail!("{context}, the initializer's own volume; {emptydir_hint}");
    }
    if claim_template(mount).is_some() {
        bail!("{context}, a volume claim template of the StatefulSet; {emptydir_hint}");
    }
    match volume(mount) {
        None => bail!("{context}, but the pod has no such volume ({existing}); {emptydir_hint}"),
        Some(volume) if volume_kind(volume) != "emptyDir" => bail!(
            "{context}, but that is a {} volume; {emptydir_hint}",
            volume_kind(volume)
        ),
        Some(_) => {}
    }

    let mut propagation_to_set = Vec::new();
    let mut mounted = false;
    for (container_index, container) in sequence(template, &["spec", "containers"])
        .iter()
        .enumerate()
    {
        let container_name = get_str(container, &["name"]).unwrap_or("<unnamed>");
        for (mount_index, volume_mount) in sequence(container, &["volumeMounts"]).iter().enumerate()
        {
            if get_str(volume_mount, &["name"]) != Some(mount) {
                continue;
            }
            mounted = true;
            let found = match volume_mount.get("mountPropagation") {
                None | Some(Value::Null) => {
                    propagation_to_set.push((container_index, mount_index));
                    continue;
                }
                Some(Value::String(mode))
                    if mode == "HostToContainer" || mode == "Bidirectional" =>
                {
                    continue;
                }
                Some(Value::String(mode)) => format!("{mode:?}"),
                Some(other) => yaml_type(other).to_owned(),
            };
            bail!(
                "{name}: the container {container_name} mounts {mount:?}, the mount volume of \
                 the annotation {SECURE_PV_ANNOTATION}, with mountPropagation {found}, so it would never see the encrypted volume the \
                 sidecar mounts there; remove mountPropagation (generate sets HostToContainer) \
                 or set it to HostToContainer"
            );
        }
    }
    if !mounted {
        warnings.push(format!(
            "{name}: no container mounts the secure-pv volume {mount:?}, so none sees the \
             encrypted volume; add a volumeMount of {mount} to the containers that need it"
        ));
    }
    Ok(SecurePvPlan {
        secure_pv: secure_pv.clone(),
        propagation_to_set,
        warnings,
    })
}

/// The secure-pv sidecar: the initializer image running [`cryptsetup_args`] as a restartable
/// init container. It opens the LUKS volume on the device with the workload secret the
/// initializer wrote to the secrets volume, and mounts it on the mount volume, which
/// `Bidirectional` propagation shares with the pod's containers; its startup probe holds back
/// the containers until the marker file says the volume is mounted.
fn secure_pv_container(image: &str, secure_pv: &SecurePv) -> anyhow::Result<Value> {
    let container = serde_json::json!({
        "name": SECURE_PV_CONTAINER,
        "image": image,
        // `args`, not `command`: the image's entrypoint is the initializer.
        "args": cryptsetup_args(SECURE_PV_DEVICE_PATH, SECURE_PV_MOUNT_POINT),
        "restartPolicy": "Always",
        // Opening a LUKS volume (device mapper) and mounting need it.
        "securityContext": { "privileged": true },
        "startupProbe": {
            "exec": { "command": ["test", "-f", INITIALIZER_DONE_FILE] },
            "initialDelaySeconds": 1,
            "periodSeconds": 1,
            "failureThreshold": SECURE_PV_STARTUP_FAILURE_THRESHOLD,
        },
        "resources": {
            "limits": { "memory": SECURE_PV_MEMORY },
            "requests": { "memory": SECURE_PV_MEMORY },
        },
        "volumeDevices": [{ "name": secure_pv.device_volume, "devicePath": SECURE_PV_DEVICE_PATH }],
        "volumeMounts": [
            {
                "name": secure_pv.mount_volume,
                "mountPath": SECURE_PV_MOUNT_POINT,
                "mountPropagation": "Bidirectional",
            },
            { "name": SECRETS_VOLUME, "mountPath": SECRETS_MOUNT_PATH },
        ],
    });
    Ok(serde_norway::to_value(container)?)
}

/// Injects the secure-pv sidecar that `plan` ([`check_secure_pv`]) was checked for: right
/// after the initializer (it needs the workload secret the initializer writes), replacing an
/// earlier injection of the same name, so injecting twice changes nothing. The containers'
/// mounts of the mount volume without `mountPropagation` get `HostToContainer`.
pub fn inject_secure_pv(
    template: &mut Value,
    image: &str,
    plan: &SecurePvPlan,
) -> anyhow::Result<()> {
    let container = secure_pv_container(image, &plan.secure_pv)?;
    let spec = child_mapping(template, "spec").context("the pod template")?;
    if let Some(Value::Sequence(containers)) = spec.get_mut("containers") {
        for &(container_index, mount_index) in &plan.propagation_to_set {
            if let Some(Value::Mapping(volume_mount)) = containers
                .get_mut(container_index)
                .and_then(|container| container.get_mut("volumeMounts"))
                .and_then(|mounts| mounts.get_mut(mount_index))
            {
                volume_mount.insert(
                    Value::String("mountPropagation".to_owned()),
                    Value::String("HostToContainer".to_owned()),
                );
            }
        }
    }
    let init_containers =
        child_sequence(spec, "initContainers").context("spec.initContainers of the pod")?;
    match init_containers
        .iter_mut()
        .find(|existing| get_str(existing, &["name"]) == Some(SECURE_PV_CONTAINER))
    {
        Some(existing) => *existing = container,
        None => {
            let position = init_containers
                .iter()
                .position(|existing| get_str(existing, &["name"]) == Some(INITIALIZER_CONTAINER))
                .map_or(0, |index| index + 1);
            init_containers.insert(position, container);
        }
    }
    Ok(())
}

/// The service-mesh sidecar: the `contrast-mesh` image as a restartable init container, with
/// the annotations' values, verbatim, in the environment variables it reads. It redirects the
/// pod's traffic with iptables (`NET_ADMIN`; privileged, as upstream's sidecar is) and serves it
/// with the mesh certificates the initializer wrote to the secrets volume; its startup probe
/// holds back the containers until it is ready.
fn service_mesh_container(image: &str, mesh: &ServiceMesh) -> anyhow::Result<Value> {
    let env: Vec<serde_json::Value> = [
        (mesh_config::INGRESS_ENV, mesh.ingress.as_deref()),
        (mesh_config::EGRESS_ENV, mesh.egress.as_deref()),
        (
            mesh_config::ADMIN_PORT_ENV,
            mesh.admin_port.as_ref().map(|(value, _)| value.as_str()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        value.map(|value| serde_json::json!({ "name": name, "value": value }))
    })
    .collect();
    let mut container = serde_json::Map::new();
    let mut field = |key: &str, value: serde_json::Value| {
        container.insert(key.to_owned(), value);
    };
    field("name", SERVICE_MESH_CONTAINER.into());
    field("image", image.into());
    field("restartPolicy", "Always".into());
    field(
        "securityContext",
        serde_json::json!({ "privileged": true, "capabilities": { "add": ["NET_ADMIN"] } }),
    );
    field("env", env.into());
    if let Some((_, port)) = &mesh.admin_port {
        field(
            "ports",
            serde_json::json!([{ "name": SERVICE_MESH_ADMIN_PORT_NAME, "containerPort": port }]),
        );
    }
    field(
        "startupProbe",
        serde_json::json!({
            "exec": { "command": ["test", "-f", SERVICE_MESH_READY_FILE] },
            "initialDelaySeconds": 1,
            "periodSeconds": 1,
            "failureThreshold": SERVICE_MESH_STARTUP_FAILURE_THRESHOLD,
        }),
    );
    field(
        "resources",
        serde_json::json!({
            "limits": { "memory": SERVICE_MESH_MEMORY },
            "requests": { "memory": SERVICE_MESH_MEMORY },
        }),
    );
    field(
        "volumeMounts",
        serde_json::json!([{ "name": SECRETS_VOLUME, "mountPath": SECRETS_MOUNT_PATH }]),
    );
    Ok(serde_norway::to_value(container)?)
}

/// Injects the service-mesh sidecar for `mesh`: after the initializer (it needs the mesh
/// certificates the initializer writes) and after the secure-pv sidecar if there is one. An
/// earlier injection of the same name is replaced and put there again, so injecting twice
/// changes nothing, and a sidecar that was moved before the initializer (where it would wait
/// for certificates that never come) is moved back.
pub fn inject_service_mesh(
    template: &mut Value,
    image: &str,
    mesh: &ServiceMesh,
) -> anyhow::Result<()> {
    let container = service_mesh_container(image, mesh)?;
    let spec = child_mapping(template, "spec").context("the pod template")?;
    let init_containers =
        child_sequence(spec, "initContainers").context("spec.initContainers of the pod")?;
    init_containers.retain(|existing| get_str(existing, &["name"]) != Some(SERVICE_MESH_CONTAINER));
    let position = init_containers
        .iter()
        .rposition(|existing| {
            matches!(
                get_str(existing, &["name"]),
                Some(INITIALIZER_CONTAINER | SECURE_PV_CONTAINER)
            )
        })
        .map_or(0, |index| index + 1);
    init_containers.insert(position, container);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_is_exact() {
        let text = "# leading comment\n---\na: 1\n--- # second\nb: 2\n...\n---\n\n";
        let documents = split_documents(text);
        assert_eq!(documents.len(), 4);
        assert_eq!(documents[0].separator, "");
        assert_eq!(documents[2].separator, "--- # second\n");
        assert_eq!(documents[2].body, "b: 2\n...\n");
        assert_eq!(join_documents(&documents), text);
    }

    #[test]
    fn separator_needs_whole_marker() {
        let documents = split_documents("a: ---x\n----\nb: 1\n");
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn workload_secret_id_default_and_override() {
        let mut workload = ConfidentialWorkload {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: "web".to_owned(),
            namespace: "shop".to_owned(),
            pod_role: None,
            workload_secret_id_annotation: None,
        };
        assert_eq!(workload.workload_secret_id(), "core/v1/Pod/shop/web");
        assert_eq!(workload.qualified_name(), "shop/pod/web");
        workload.workload_secret_id_annotation = Some("mine".to_owned());
        assert_eq!(workload.workload_secret_id(), "mine");
    }

    fn annotations(pairs: &[(&str, Value)]) -> Mapping {
        pairs
            .iter()
            .map(|(k, v)| (Value::String((*k).to_owned()), v.clone()))
            .collect()
    }

    fn decide(pairs: &[(&str, Value)]) -> anyhow::Result<PodAnnotations> {
        let map = annotations(pairs);
        decide_annotations("default/pod/p", |key| map.get(key))
    }

    fn string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn skip_initializer_is_true_false_or_refused() {
        assert_eq!(decide(&[]).unwrap(), PodAnnotations::default());
        let skip = |value: Value| decide(&[(SKIP_INITIALIZER_ANNOTATION, value)]);
        assert!(skip(string("true")).unwrap().skip_initializer);
        assert!(!skip(string("false")).unwrap().skip_initializer);
        for bad in [string("yes"), string("True"), string(""), Value::Bool(true)] {
            let message = format!("{:#}", skip(bad).unwrap_err());
            assert!(message.contains("default/pod/p"), "{message}");
            assert!(message.contains(SKIP_INITIALIZER_ANNOTATION), "{message}");
        }
    }

    #[test]
    fn unsupported_annotations_are_refused_naming_the_feature() {
        for (key, feature) in UNSUPPORTED_ANNOTATIONS {
            let message = format!("{:#}", decide(&[(key, string("x"))]).unwrap_err());
            for needle in ["default/pod/p", key, feature, "not support"] {
                assert!(message.contains(needle), "{needle} missing: {message}");
            }
            // Even an empty value asks for the feature upstream.
            assert!(decide(&[(key, string(""))]).is_err());
        }
        // "0" disables the image store: nothing to refuse.
        assert_eq!(
            decide(&[(IMAGE_STORE_SIZE_ANNOTATION, string("0"))]).unwrap(),
            PodAnnotations::default()
        );
        // Annotations contrast-rs honours elsewhere, or does not know, are not refused here.
        assert!(decide(&[(WORKLOAD_SECRET_ID_ANNOTATION, string("id"))]).is_ok());
        assert!(decide(&[("example.com/other", string("x"))]).is_ok());
    }

    #[test]
    fn annotations_are_read_from_the_template_or_the_resource() {
        let resource: Value = serde_norway::from_str(
            "kind: Deployment\nmetadata: {name: d, annotations: {contrast.edgeless.systems/secure-pv: 'a:b'}}\nspec:\n  template:\n    metadata: {annotations: {contrast.edgeless.systems/skip-initializer: 'true'}}\n    spec: {runtimeClassName: contrast-cc}\n",
        )
        .unwrap();
        let workload = confidential_workload(&resource).unwrap().unwrap();
        // Each from where it is: secure-pv from the resource, skip-initializer from the template.
        assert_eq!(
            pod_annotations(&resource, &workload).unwrap(),
            PodAnnotations {
                skip_initializer: true,
                secure_pv: Some(SecurePv {
                    device_volume: "a".to_owned(),
                    mount_volume: "b".to_owned()
                }),
                service_mesh: None,
            }
        );
        let template_only: Value = serde_norway::from_str(
            "kind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    metadata: {annotations: {contrast.edgeless.systems/skip-initializer: 'true'}}\n    spec: {runtimeClassName: contrast-cc}\n",
        )
        .unwrap();
        assert!(
            pod_annotations(&template_only, &workload)
                .unwrap()
                .skip_initializer
        );
    }

    fn mesh(pairs: &[(&str, &str)]) -> anyhow::Result<Option<ServiceMesh>> {
        let pairs: Vec<(&str, Value)> = pairs.iter().map(|(k, v)| (*k, string(v))).collect();
        decide(&pairs).map(|annotations| annotations.service_mesh)
    }

    #[test]
    fn service_mesh_annotations_are_kept_verbatim() {
        assert_eq!(mesh(&[]).unwrap(), None);
        assert_eq!(
            mesh(&[
                (
                    SERVICE_MESH_INGRESS_ANNOTATION,
                    "web#8080#false##metrics#9090#true"
                ),
                (
                    SERVICE_MESH_EGRESS_ANNOTATION,
                    "db#127.137.0.1:5432#db:5432"
                ),
                (SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "9901"),
            ])
            .unwrap(),
            Some(ServiceMesh {
                ingress: Some("web#8080#false##metrics#9090#true".to_owned()),
                egress: Some("db#127.137.0.1:5432#db:5432".to_owned()),
                admin_port: Some(("9901".to_owned(), 9901)),
            })
        );
        for ingress in ["", "DISABLED"] {
            assert_eq!(
                mesh(&[(SERVICE_MESH_INGRESS_ANNOTATION, ingress)]).unwrap(),
                Some(ServiceMesh {
                    ingress: Some(ingress.to_owned()),
                    ..ServiceMesh::default()
                })
            );
        }
        // The admin port may be any port but the proxy's own.
        assert!(mesh(&[(SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "8080")]).is_ok());
        assert!(mesh(&[(SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "15006")]).is_err());
        // An ingress entry may declare it (how it is reached in plain from outside).
        assert!(
            mesh(&[
                (SERVICE_MESH_INGRESS_ANNOTATION, "admin#8080#true"),
                (SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "8080")
            ])
            .is_ok()
        );
        // But not an egress listener's port.
        assert!(
            mesh(&[
                (SERVICE_MESH_EGRESS_ANNOTATION, "db#127.0.0.1:1#db:1"),
                (SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "1"),
            ])
            .is_err()
        );
        let names = mesh(&[
            (SERVICE_MESH_EGRESS_ANNOTATION, "db#127.0.0.1:1#db:1"),
            (SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "2"),
        ])
        .unwrap()
        .unwrap()
        .annotations();
        assert_eq!(
            names,
            format!(
                "the annotations {SERVICE_MESH_EGRESS_ANNOTATION} and \
                 {SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION}"
            )
        );
    }

    #[test]
    fn service_mesh_errors_name_the_workload_annotation_and_entry() {
        for (pairs, needles) in [
            (
                vec![(SERVICE_MESH_INGRESS_ANNOTATION, "web#8080#false##db#5432")],
                vec![
                    "entry 2 \"db#5432\"",
                    "<name>#<port>#<disableTLS>",
                    "found 2 field(s)",
                ],
            ),
            (
                vec![(SERVICE_MESH_EGRESS_ANNOTATION, "db#10.0.0.1:5432#db:5432")],
                vec!["entry 1", "10.0.0.1 is not a loopback address"],
            ),
            (
                vec![(SERVICE_MESH_EGRESS_ANNOTATION, "")],
                vec!["is empty", "at least one entry", "removed"],
            ),
            (
                vec![(SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "x")],
                vec!["\"x\"", "port number from 1 to 65535"],
            ),
            (
                vec![
                    (SERVICE_MESH_EGRESS_ANNOTATION, "db#127.0.0.1:8080#db:1"),
                    (SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION, "8080"),
                ],
                vec![
                    "\"8080\"",
                    "the egress entry \"db\" listens on 127.0.0.1:8080",
                    "another port",
                ],
            ),
        ] {
            let annotation = pairs.last().unwrap().0;
            let message = format!("{:#}", mesh(&pairs).unwrap_err());
            for needle in ["default/pod/p", annotation].iter().chain(&needles) {
                assert!(message.contains(needle), "{needle} missing: {message}");
            }
        }
        let message = format!(
            "{:#}",
            decide(&[(
                SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION,
                Value::from(9901)
            )])
            .unwrap_err()
        );
        assert!(message.contains("must be strings"), "{message}");
    }

    #[test]
    fn service_mesh_sidecar_follows_the_initializer_and_secure_pv() {
        let mut pod: Value = serde_norway::from_str(
            "kind: Pod\nmetadata: {name: p}\nspec:\n  runtimeClassName: contrast-cc\n  initContainers: [{name: other, image: x}]\n  containers: [{name: c, image: y}]\n",
        )
        .unwrap();
        let names = |pod: &Value| -> Vec<String> {
            pod["spec"]["initContainers"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let mesh = ServiceMesh {
            ingress: Some(String::new()),
            egress: None,
            admin_port: Some(("9901".to_owned(), 9901)),
        };
        let template = pod_template_mut(&mut pod).unwrap();
        inject_initializer(template, "img:1", "{}", false).unwrap();
        inject_service_mesh(template, "mesh:1", &mesh).unwrap();
        assert_eq!(
            names(&pod),
            [INITIALIZER_CONTAINER, SERVICE_MESH_CONTAINER, "other"]
        );
        let once = pod.clone();
        inject_service_mesh(pod_template_mut(&mut pod).unwrap(), "mesh:1", &mesh).unwrap();
        assert_eq!(pod, once);
        let sidecar = &pod["spec"]["initContainers"][1];
        assert_eq!(
            serde_json::to_value(&sidecar["env"]).unwrap(),
            serde_json::json!([{ "name": "CONTRAST_INGRESS_PROXY_CONFIG", "value": "" },
                               { "name": "CONTRAST_ADMIN_PORT", "value": "9901" }])
        );
        assert_eq!(
            serde_json::to_value(&sidecar["ports"]).unwrap(),
            serde_json::json!([{ "name": "contrast-admin", "containerPort": 9901 }])
        );
        // A secure-pv sidecar injected later goes before it; injecting the mesh again keeps
        // that order, and a sidecar moved to the front is put back.
        let Value::Sequence(init) = &mut pod["spec"]["initContainers"] else {
            panic!()
        };
        init.insert(
            1,
            serde_norway::from_str(&format!("{{name: {SECURE_PV_CONTAINER}}}")).unwrap(),
        );
        let sidecar = init.remove(2);
        init.insert(0, sidecar);
        inject_service_mesh(pod_template_mut(&mut pod).unwrap(), "mesh:1", &mesh).unwrap();
        assert_eq!(
            names(&pod),
            [
                INITIALIZER_CONTAINER,
                SECURE_PV_CONTAINER,
                SERVICE_MESH_CONTAINER,
                "other"
            ]
        );
        remove_service_mesh(pod_template_mut(&mut pod).unwrap());
        assert_eq!(
            names(&pod),
            [INITIALIZER_CONTAINER, SECURE_PV_CONTAINER, "other"]
        );
    }

    #[test]
    fn secure_pv_is_a_device_and_a_mount_volume() {
        assert_eq!(
            SecurePv::parse("state:share"),
            Ok(SecurePv {
                device_volume: "state".to_owned(),
                mount_volume: "share".to_owned(),
            })
        );
        assert!(SecurePv::parse("a-1:0b").is_ok());
        let long = "a".repeat(63);
        assert!(SecurePv::parse(&format!("{long}:b")).is_ok());
        for (bad, reason) in [
            ("state", "0 ':'"),
            ("", "0 ':'"),
            ("a:b:c", "2 ':'"),
            ("state::share", "2 ':'"),
            (":share", "device volume is empty"),
            ("state:", "mount volume is empty"),
            (":", "device volume is empty"),
            ("State:share", "\"State\" is not a valid volume name"),
            ("state:sh_are", "\"sh_are\" is not a valid volume name"),
            ("-state:share", "not a valid volume name"),
            ("state:share-", "not a valid volume name"),
            (" state:share", "not a valid volume name"),
            (&format!("{long}a:b"), "not a valid volume name"),
            ("same:same", "twice"),
        ] {
            let message = SecurePv::parse(bad).unwrap_err();
            assert!(message.contains(reason), "{bad:?}: {message}");
        }
    }

    #[test]
    fn secure_pv_annotation_errors_name_the_workload_value_and_syntax() {
        assert_eq!(
            decide(&[(SECURE_PV_ANNOTATION, string("state:share"))])
                .unwrap()
                .secure_pv,
            Some(SecurePv {
                device_volume: "state".to_owned(),
                mount_volume: "share".to_owned(),
            })
        );
        for bad in [string("state"), string("a:b:c"), string(":share")] {
            let value = bad.as_str().unwrap().to_owned();
            let message = format!("{:#}", decide(&[(SECURE_PV_ANNOTATION, bad)]).unwrap_err());
            for needle in [
                "default/pod/p",
                SECURE_PV_ANNOTATION,
                &format!("{value:?}"),
                "<device volume>:<mount volume>",
            ] {
                assert!(message.contains(needle), "{needle} missing: {message}");
            }
        }
        let message = format!(
            "{:#}",
            decide(&[(SECURE_PV_ANNOTATION, Value::Bool(true))]).unwrap_err()
        );
        assert!(message.contains("must be strings"), "{message}");
    }

    fn secure_pv_plan(resource: &Value, claims: &InputClaims) -> anyhow::Result<SecurePvPlan> {
        let workload = confidential_workload(resource).unwrap().unwrap();
        let secure_pv = pod_annotations(resource, &workload)
            .unwrap()
            .secure_pv
            .unwrap();
        check_secure_pv(resource, &workload, &secure_pv, claims)
    }

    #[test]
    fn secure_pv_sidecar_follows_the_initializer_and_injecting_twice_is_idempotent() {
        let mut pod: Value = serde_norway::from_str(
            "kind: Pod\nmetadata: {name: p, annotations: {contrast.edgeless.systems/secure-pv: 'disk:share'}}\nspec:\n  runtimeClassName: contrast-cc\n  initContainers: [{name: other, image: x}]\n  containers: [{name: c, image: y, volumeMounts: [{name: share, mountPath: /s}]}, {name: d, image: y, volumeMounts: [{name: share, mountPath: /s, mountPropagation: Bidirectional}]}]\n  volumes:\n    - {name: disk, ephemeral: {volumeClaimTemplate: {spec: {volumeMode: Block}}}}\n    - {name: share}\n",
        )
        .unwrap();
        let plan = secure_pv_plan(&pod, &InputClaims::new()).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let template = pod_template_mut(&mut pod).unwrap();
        inject_initializer(template, "img:1", "{}", false).unwrap();
        inject_secure_pv(template, "img:1", &plan).unwrap();
        let once = pod.clone();
        let template = pod_template_mut(&mut pod).unwrap();
        inject_initializer(template, "img:1", "{}", false).unwrap();
        inject_secure_pv(template, "img:1", &plan).unwrap();
        assert_eq!(pod, once);
        let names: Vec<_> = pod["spec"]["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [INITIALIZER_CONTAINER, SECURE_PV_CONTAINER, "other"]);
        let propagation = |index: usize| {
            pod["spec"]["containers"][index]["volumeMounts"][0]["mountPropagation"].as_str()
        };
        assert_eq!(propagation(0), Some("HostToContainer"));
        assert_eq!(propagation(1), Some("Bidirectional"));
        remove_secure_pv(pod_template_mut(&mut pod).unwrap());
        let names: Vec<_> = pod["spec"]["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [INITIALIZER_CONTAINER, "other"]);
    }

    #[test]
    fn secure_pv_volumes_are_checked() {
        let pod = |volumes: &str, mount: &str| -> Value {
            serde_norway::from_str(&format!(
                "kind: Pod\nmetadata: {{name: p, annotations: {{contrast.edgeless.systems/secure-pv: 'disk:share'}}}}\nspec:\n  runtimeClassName: contrast-cc\n  containers: [{{name: c, image: y, volumeMounts: [{{name: share, mountPath: /s{mount}}}]}}]\n  volumes: {volumes}\n"
            ))
            .unwrap()
        };
        let share = "{name: share, emptyDir: {}}";
        let claim = "{name: disk, persistentVolumeClaim: {claimName: data}}";
        let refused = |resource: Value, claims: &InputClaims, needles: &[&str]| {
            let message = format!("{:#}", secure_pv_plan(&resource, claims).unwrap_err());
            for needle in needles {
                assert!(message.contains(needle), "{needle} missing: {message}");
            }
        };
        let mut claims = InputClaims::new();
        // Not among the inputs: accepted with a warning.
        let plan = secure_pv_plan(&pod(&format!("[{claim}, {share}]"), ""), &claims).unwrap();
        assert!(
            plan.warnings[0].contains("could not check"),
            "{:?}",
            plan.warnings
        );
        // Among them (same namespace): Block only.
        let data: Value = serde_norway::from_str(
            "kind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {volumeMode: Block}\n",
        )
        .unwrap();
        collect_claim(&data, &mut claims);
        let plan = secure_pv_plan(&pod(&format!("[{claim}, {share}]"), ""), &claims).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let data: Value = serde_norway::from_str(
            "kind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {}\n",
        )
        .unwrap();
        collect_claim(&data, &mut claims);
        refused(
            pod(&format!("[{claim}, {share}]"), ""),
            &claims,
            &["default/data", "Filesystem, the default", "Block"],
        );
        refused(
            pod(&format!("[{share}]"), ""),
            &claims,
            &["no such volume", "volumes: share"],
        );
        refused(
            pod(
                &format!("[{{name: disk, hostPath: {{path: /x}}}}, {share}]"),
                "",
            ),
            &claims,
            &["a hostPath volume", "Block"],
        );
        refused(
            pod(
                &format!(
                    "[{{name: disk, ephemeral: {{volumeClaimTemplate: {{spec: {{volumeMode: Filesystem}}}}}}}}, {share}]"
                ),
                "",
            ),
            &claims,
            &["ephemeral", "volumeMode Filesystem"],
        );
        let disk = "{name: disk, ephemeral: {volumeClaimTemplate: {spec: {volumeMode: Block}}}}";
        refused(
            pod(
                &format!("[{disk}, {{name: share, configMap: {{name: x}}}}]"),
                "",
            ),
            &claims,
            &["\"share\"", "a configMap volume", "emptyDir"],
        );
        refused(
            pod(&format!("[{disk}]"), ""),
            &claims,
            &["mount volume \"share\"", "no such volume", "emptyDir"],
        );
        refused(
            pod(&format!("[{disk}, {share}]"), ", mountPropagation: None"),
            &claims,
            &[
                "container c",
                "mountPropagation \"None\"",
                "HostToContainer",
            ],
        );
        // A volume with only a name is an emptyDir (Kubernetes' default).
        assert!(secure_pv_plan(&pod(&format!("[{disk}, {{name: share}}]"), ""), &claims).is_ok());
    }

    #[test]
    fn near_misses_of_the_runtime_class() {
        for near in [
            "contrast-c",
            "Contrast-cc",
            "contrast_cc",
            "contrastcc",
            "contrast-cc-snp",
            "contrast-cc-metal-qemu-snp-1a2b3c4d",
            "contrast",
            "kontrast-cc",
        ] {
            assert!(is_near_miss_runtime_class(near), "{near}");
        }
        for far in [
            RUNTIME_CLASS,
            "kata-qemu-snp",
            "kata-cc",
            "runc",
            "gvisor",
            "",
        ] {
            assert!(!is_near_miss_runtime_class(far), "{far}");
        }
        let pod: Value = serde_norway::from_str(
            "kind: Pod\nmetadata: {name: p, namespace: n}\nspec: {runtimeClassName: contrast-c}\n",
        )
        .unwrap();
        assert_eq!(
            near_miss_runtime_class(&pod),
            Some(NearMiss {
                resource: "n/pod/p".to_owned(),
                runtime_class: "contrast-c".to_owned()
            })
        );
    }

    #[test]
    fn inject_twice_is_idempotent() {
        let mut pod: Value = serde_norway::from_str(
            "kind: Pod\nmetadata: {name: p}\nspec:\n  runtimeClassName: contrast-cc\n  initContainers: [{name: other, image: x}]\n  containers: [{name: c, image: y}]\n",
        )
        .unwrap();
        let template = pod_template_mut(&mut pod).unwrap();
        inject_initializer(template, "img:1", "{\"old\":1}", false).unwrap();
        inject_initializer(pod_template_mut(&mut pod).unwrap(), "img:1", "{}", false).unwrap();
        let once = pod.clone();
        inject_initializer(pod_template_mut(&mut pod).unwrap(), "img:1", "{}", false).unwrap();
        assert_eq!(pod, once);
        // The identity is replaced, not added.
        let env = pod["spec"]["initContainers"][0]["env"]
            .as_sequence()
            .unwrap();
        assert_eq!(env.len(), 3);
        assert_eq!(env[2]["name"].as_str(), Some(SERVICE_MESH_DISABLED_ENV));
        assert_eq!(env[1]["name"].as_str(), Some(COORDINATOR_IDENTITY_ENV));
        assert_eq!(env[1]["value"].as_str(), Some("{}"));
        let names: Vec<_> = pod["spec"]["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["contrast-initializer", "other"]);
    }
}
